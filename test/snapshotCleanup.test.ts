/**
 * Snapshot cleanup (issue 14; the design's "snapshot storage full" risk): the orchestrator's test
 * snapshots are deleted once their entry ended and the retention passed — once, only its own.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabSalt } from '../src/lab/salt.ts';
import { SaltClient } from '../src/services/salt/client.ts';
import { SnapshotCleanup } from '../src/scheduler/snapshotCleanup.ts';
import { OrchestratorMetrics } from '../src/services/metrics.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem } from './helpers/actors.ts';

const lab = new LabSalt(['test-ubuntu-01']);
let t: Awaited<ReturnType<typeof createTestDatabase>>;
let salt: SaltClient;
beforeAll(async () => {
  t = await createTestDatabase();
  salt = new SaltClient({ url: await lab.serve(), user: 'salt', password: 'salt', eauth: 'pam', timeoutMs: 5000 });
});
afterAll(async () => {
  await lab.close();
  await t.drop();
});

/** An entry that ended `daysAgo`, whose test took snapshot `snapshotId` on the test system. */
async function endedEntry(errataId: string, daysAgo: number, snapshotId: number): Promise<number> {
  await seedErrata(t.db, [errataId]);
  const { sys } = await startTestSystem(t.db, { ownerId: `cleanup-${errataId}` });
  const id = await sys.host.create(
    {
      errataId,
      errataVersion: '1',
      targetOs: 'ubuntu',
      priority: 0,
      successScore: 50,
      notes: null,
      settings: FAST_SETTINGS,
    },
    { actor: 't' },
  );
  await sys.stop();
  await t.db.query(
    sql.unsafe`UPDATE patch_test_queue SET status = 'rolled_back', completed_at = now() - make_interval(days => ${daysAgo}) WHERE id = ${id}`,
  );
  await t.db.query(sql.unsafe`
    INSERT INTO patch_tests (queue_id, errata_id, attempt, test_system_name, snapshot_id, snapshot_type, result)
    VALUES (${id}, ${errataId}, 1, 'test-ubuntu-01', ${String(snapshotId)}, 'snapper', 'failed')`);
  return id;
}

describe('snapshot cleanup', () => {
  it('deletes the snapshots of entries ended beyond the retention, once; keeps recent ones and others’ snapshots', async () => {
    const m = lab.minions.get('test-ubuntu-01')!;
    const old = await endedEntry('USN-9300-1', 10, 0);
    const recent = await endedEntry('USN-9301-1', 1, 0);
    const foreign = await endedEntry('USN-9302-1', 10, 0);
    // The snapshots as the engine takes them (description = prefix + effect key), and one of an admin's.
    const r1 = await salt.local<number>(['test-ubuntu-01'], 'snapper.create_snapshot', [], {
      config: 'root',
      snapshot_type: 'single',
      description: `spm-orchestrator ${old}:1:snapshot`,
    });
    const r2 = await salt.local<number>(['test-ubuntu-01'], 'snapper.create_snapshot', [], {
      config: 'root',
      snapshot_type: 'single',
      description: `spm-orchestrator ${recent}:1:snapshot`,
    });
    const r3 = await salt.local<number>(['test-ubuntu-01'], 'snapper.create_snapshot', [], {
      config: 'root',
      snapshot_type: 'single',
      description: 'before the kernel upgrade (admin)',
    });
    const ids = {
      old: r1.returned['test-ubuntu-01']!,
      recent: r2.returned['test-ubuntu-01']!,
      admin: r3.returned['test-ubuntu-01']!,
    };
    await t.db.query(sql.unsafe`UPDATE patch_tests SET snapshot_id = ${String(ids.old)} WHERE queue_id = ${old}`);
    await t.db.query(sql.unsafe`UPDATE patch_tests SET snapshot_id = ${String(ids.recent)} WHERE queue_id = ${recent}`);
    await t.db.query(sql.unsafe`UPDATE patch_tests SET snapshot_id = ${String(ids.admin)} WHERE queue_id = ${foreign}`);

    const cleanup = new SnapshotCleanup({ db: t.db, logger: silentLogger, salt, keepDays: async () => 7 });
    expect(await cleanup.round()).toBe(1);
    expect(m.snapshots.map((s) => s.id).sort()).toEqual([ids.recent, ids.admin].sort());
    // Done once: a second round (or another replica) deletes nothing more.
    expect(await cleanup.round()).toBe(0);
    expect(lab.effects.get(`snapshot_delete|test-ubuntu-01|${ids.old}`) ?? 0).toBe(1);
    expect(lab.effects.get(`snapshot_delete|test-ubuntu-01|${ids.admin}`) ?? 0).toBe(0);
  });

  it("measures each test system's snapshot storage into spm_snapshot_space_used_ratio (Salt disk.usage), and skips a silent one", async () => {
    const m = lab.minions.get('test-ubuntu-01')!;
    m.diskBaseUsedRatio = 0.8;
    const metrics = new OrchestratorMetrics({ db: t.db, logger: silentLogger });
    const cleanup = new SnapshotCleanup({
      db: t.db,
      logger: silentLogger,
      salt,
      keepDays: async () => 7,
      testSystems: async () => ['test-ubuntu-01', 'test-gone-01'],
      metrics,
    });
    const measured = await cleanup.measure();
    const expected = 0.8 + 0.01 * m.snapshots.length;
    expect(Object.keys(measured)).toEqual(['test-ubuntu-01']);
    expect(measured['test-ubuntu-01']).toBeCloseTo(expected, 4);
    const text = await metrics.render();
    const line = text.split('\n').find((l) => l.startsWith('spm_snapshot_space_used_ratio{system="test-ubuntu-01"}'));
    expect(Number(line?.split(' ')[1])).toBeCloseTo(expected, 4);
    expect(text).not.toContain('system="test-gone-01"');
  });
});
