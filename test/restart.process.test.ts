/**
 * Restart: entries spread over many states, `kill -9` of the real daemon process, start again:
 * every actor resumes in the state it had, a snooze set to t+10 s with a restart at t+4 s fires at
 * t+10 s (not t+14 s), and no effect key is executed twice (counted by the fake world, which lives
 * in this process and survives the kill).
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { loadJournal } from '../src/persistence/sql/entries.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { checkInvariants, seedErrata, waitForStatus } from './helpers/actors.ts';
import { adminToken, api, spawnDaemon } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new FakeWorld();
let worldUrl: string;
let close: () => void;
beforeAll(async () => {
  t = await createTestDatabase();
  const served = await world.serve();
  worldUrl = served.url;
  close = () => served.server.close();
});
afterAll(async () => {
  close();
  await t.drop();
});

const fast = {
  wait_after_patch_seconds: 0,
  wait_after_reboot_seconds: 0,
  reboot_timeout_seconds: 60,
  step_timeout_seconds: 600,
  retry_base_seconds: 1,
  retry_max_seconds: 4,
  retry_max_attempts: 10,
  time_scale_ms: 20,
};

describe('kill -9 and restart', () => {
  it('resumes every actor in its state, fires the snooze at its original deadline, duplicates no effect', async () => {
    await setConfigValue(t.db, 'test_thresholds', fast, 'test');
    const ids = [
      'USN-8001-1',
      'USN-8002-1',
      'USN-8003-1',
      'USN-8004-1-VALFAIL',
      'USN-8005-1-INCONCL',
      'USN-8006-1',
      'USN-8007-1',
    ];
    await seedErrata(t.db, [...ids, 'USN-8008-1']);
    const token = await adminToken(t.db);
    let d = await spawnDaemon({ dbUrl: t.url, worldUrl, instanceId: 'replica-r' });
    let call = api(d.base, token);

    const q = await call('POST', '/queue', { errata_ids: ids });
    expect(q.status).toBe(201);
    const id = Object.fromEntries(
      q.body.results.map((r: { errata_id: string; id: number }) => [r.errata_id, r.id]),
    ) as Record<string, number>;
    // A long stabilisation wait for one entry: it will be mid-test (testing.stabilize) at the kill.
    await setConfigValue(
      t.db,
      'test_thresholds',
      { ...fast, wait_after_patch_seconds: 60, time_scale_ms: 1000 },
      'test',
    );
    const slow = await call('POST', '/queue', { errata_id: 'USN-8008-1' });
    id['USN-8008-1'] = slow.body.results[0].id;

    for (const e of [
      'USN-8002-1',
      'USN-8003-1',
      'USN-8004-1-VALFAIL',
      'USN-8005-1-INCONCL',
      'USN-8006-1',
      'USN-8007-1',
      'USN-8008-1',
    ]) {
      expect((await call('POST', '/tests/start', { queue_id: id[e] })).status).toBe(202);
    }
    for (const e of ['USN-8002-1', 'USN-8003-1', 'USN-8006-1', 'USN-8007-1'])
      await waitForStatus(t.db, id[e]!, (s) => s === 'pending_approval');
    await waitForStatus(t.db, id['USN-8004-1-VALFAIL']!, (s) => s === 'rolled_back');
    await waitForStatus(t.db, id['USN-8005-1-INCONCL']!, (s) => s === 'needs_attention');
    await waitForStatus(t.db, id['USN-8008-1']!, (s) => s === 'testing');
    const stabilizing = async () =>
      await t.db.oneFirst(
        sql.type(
          z.object({ v: z.unknown() }),
        )`SELECT state_value AS v FROM patch_test_queue WHERE id = ${id['USN-8008-1']!}`,
      );
    for (let i = 0; i < 100 && JSON.stringify(await stabilizing()) !== '{"testing":"stabilize"}'; i++)
      await new Promise((r) => setTimeout(r, 50));

    expect((await call('POST', `/approvals/${id['USN-8003-1']}/approve`, { reason: 'ok' })).status).toBe(200);
    await waitForStatus(t.db, id['USN-8003-1']!, (s) => s === 'completed');
    expect((await call('POST', `/approvals/${id['USN-8006-1']}/reject`, { reason: 'not needed' })).status).toBe(200);

    const dbNow = async () =>
      t.db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS n`,
      );
    const t0 = await dbNow();
    const until = t0 + 10_000;
    expect(
      (
        await call('POST', `/approvals/${id['USN-8007-1']}/snooze`, {
          reason: 'change freeze',
          until: new Date(until).toISOString(),
        })
      ).status,
    ).toBe(200);

    while ((await dbNow()) < t0 + 4000) await new Promise((r) => setTimeout(r, 50));
    const before = await t.db.any(sql.type(
      z.object({ id: z.number(), status: z.string(), state_value: z.unknown(), revision: z.number() }),
    )`
      SELECT id, status, state_value, revision FROM patch_test_queue ORDER BY id`);
    d.child.proc.kill('SIGKILL');
    await d.child.exited;

    d = await spawnDaemon({ dbUrl: t.url, worldUrl, instanceId: 'replica-r', port: d.port });
    call = api(d.base, token);
    for (const row of before) {
      const ins = await call('GET', `/queue/${row.id}/inspect`);
      expect(ins.status).toBe(200);
      expect({ id: row.id, status: ins.body.status, value: ins.body.state_value }).toEqual({
        id: row.id,
        status: row.status,
        value: row.state_value,
      });
      const final = ['completed', 'rejected', 'rolled_back', 'removed'].includes(row.status);
      expect(ins.body.live).toBe(!final);
    }

    await waitForStatus(t.db, id['USN-8007-1']!, (s) => s === 'pending_approval', 15_000);
    const fired = (await loadJournal(t.db, id['USN-8007-1']!)).find(
      (j) => j.event_type === 'TIMER' && j.from_state === 'snoozed',
    );
    expect(fired).toBeDefined();
    expect(fired!.at).toBeGreaterThanOrEqual(until);
    expect(fired!.at).toBeLessThan(until + 1500); // poll interval 100 ms; nowhere near t+14 s

    // The entry that was mid-stabilisation still finishes its test after the restart... at its own deadline.
    const st = await t.db.oneFirst(
      sql.type(
        z.object({ v: z.unknown() }),
      )`SELECT state_value AS v FROM patch_test_queue WHERE id = ${id['USN-8008-1']!}`,
    );
    expect(st).toEqual({ testing: 'stabilize' });

    d.child.proc.kill('SIGTERM');
    expect((await d.child.exited).code).toBe(0);
    expect(world.duplicates()).toEqual([]);
    for (const row of before) await checkInvariants(t.db, row.id);
  }, 90_000);
});
