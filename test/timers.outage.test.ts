/**
 * A database outage does not count against a step (issue 11, chaos:db's db_failures): the timer
 * loop cannot reach PostgreSQL while a step's timeout comes due; when it can again, the step and
 * reboot timeouts of its entries move later by the outage, instead of failing the test at once.
 * The real actor host and PostgreSQL; the timer loop's own database handle fails while "down".
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startActorSystem, type ActorSystem } from '../src/machines/system.ts';
import type { Db } from '../src/persistence/db.ts';
import { TimerScheduler } from '../src/scheduler/timers.ts';
import { ControlledPorts } from './helpers/controlledPorts.ts';
import { FAST_SETTINGS, seedErrata, statusOfEntry } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
const ctl = new ControlledPorts();
let down = false;
/** The database as the timer loop sees it: every call fails with a connection reset while `down`. */
const flaky = (db: Db): Db =>
  new Proxy(db, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) =>
        down
          ? Promise.reject(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))
          : v.apply(target, args);
    },
  });

beforeAll(async () => {
  t = await createTestDatabase();
  sys = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'outage',
    leaseTtlMs: 60_000,
    pollMs: 50,
    ports: ctl.ports(),
  });
  // The system's own timer loop is replaced by one on the flaky handle.
  await sys.scheduler.stop();
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

const stepTimeoutAt = (id: number) =>
  t.db.maybeOneFirst(sql.type(z.object({ ms: z.number() }))`
    SELECT (extract(epoch FROM fire_at) * 1000)::float8 AS ms FROM timers WHERE queue_id = ${id} AND name = 'step_timeout'`);

describe('timers across a database outage', () => {
  it('a step timeout that came due during an outage moves later by the outage, then fires', async () => {
    await seedErrata(t.db, ['USN-9500-1']);
    const id = await sys.host.create(
      {
        errataId: 'USN-9500-1',
        errataVersion: null,
        targetOs: 'ubuntu',
        priority: 0,
        successScore: 50,
        notes: null,
        settings: { ...FAST_SETTINGS, stepTimeoutMs: 1500 },
      },
      { actor: 'alice' },
    );
    // The snapshot never answers: only the step timeout can end the step.
    await sys.host.send(
      id,
      { type: 'START_TEST', by: 'alice', testSystem: { id: 1, name: 'test-ubuntu-01' } },
      { actor: 'alice' },
    );
    const armed = await stepTimeoutAt(id);
    expect(armed).not.toBeNull();
    const timers = new TimerScheduler({
      db: flaky(t.db),
      logger: silentLogger,
      clock: sys.clock,
      ownerId: 'outage',
      pollMs: 50,
      host: sys.host,
    });
    down = true;
    timers.start();
    try {
      // Down for 3 s: the 1.5 s timeout comes due while the loop cannot reach the database.
      await new Promise((r) => setTimeout(r, 3000));
      down = false;
      await new Promise((r) => setTimeout(r, 500));
      expect(await statusOfEntry(t.db, id), 'not failed at the first round after the outage').toBe('testing');
      const moved = await stepTimeoutAt(id);
      expect(moved! - armed!).toBeGreaterThanOrEqual(2900);
      // It still fires, about an outage later than armed.
      for (let i = 0; i < 100 && (await statusOfEntry(t.db, id)) === 'testing'; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await statusOfEntry(t.db, id)).not.toBe('testing');
      expect(timers.fired).toBe(1);
    } finally {
      await timers.stop();
    }
  });
});
