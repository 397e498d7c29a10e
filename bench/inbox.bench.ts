/**
 * What forwarding costs an operator (issue 11): an APPROVE sent to the replica that owns the entry
 * against one sent to another replica, which forwards it through the operator inbox (a row and a
 * NOTIFY) and answers after the owner committed it. Two actor systems over one scratch PostgreSQL,
 * in one process; entries waiting for approval, approved one at a time, alternately at the owner and
 * at the other replica. Latency = until `send` resolves (the transition is committed).
 *
 *   npm run bench:inbox            # 300 approvals each way
 *   npm run bench:inbox -- --n 1000
 *
 * Last line: `bench: inbox_direct_p50_ms=… inbox_direct_p99_ms=… inbox_forwarded_p50_ms=…
 * inbox_forwarded_p99_ms=… inbox_added_p50_ms=… inbox_added_p99_ms=…`.
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { sql } from 'slonik';
import { createActor } from 'xstate';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { MACHINE_VERSION, patchMachine, type Settings } from '../src/machines/patch.machine.ts';
import { startActorSystem } from '../src/machines/system.ts';
import { createDb, type Db } from '../src/persistence/db.ts';
import { createMigratedDatabase, startScratchPostgres } from '../test/helpers/pgServer.ts';

// Errors only: the approved entries go on (notify, plan, deploy) while the replicas stop.
const logger = pino({ level: 'error' });
const arg = process.argv.indexOf('--n');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 300;
const SETTINGS: Settings = {
  waitAfterPatchMs: 0,
  waitAfterRebootMs: 0,
  rebootTimeoutMs: 3_600_000,
  stepTimeoutMs: 3_600_000,
  retryBaseMs: 1000,
  retryMaxMs: 10_000,
  retryMaxAttempts: 5,
};

/** A persisted pending_approval snapshot with a passed test (the gate opens on one approval). */
function pendingApproval(): unknown {
  const context = createActor(patchMachine, {
    input: { entryId: 0, errataId: 'X', targetOs: 'ubuntu', settings: SETTINGS },
  }).getSnapshot().context;
  const resolved = patchMachine.resolveState({
    value: 'pending_approval',
    context: {
      ...context,
      attempt: 1,
      test: { ...context.test, snapshotId: 's', baselineTaken: true, verdict: 'pass', evidence: { checks: [] } },
    },
  });
  return patchMachine.getPersistedSnapshot(resolved);
}

async function seed(db: Db, n: number): Promise<number[]> {
  await db.query(sql.unsafe`
    INSERT INTO errata_cache (errata_id, advisory_type, target_os)
    SELECT 'INBOX-' || g, 'Security Advisory', 'ubuntu' FROM generate_series(1, ${n}) g`);
  await db.query(sql.unsafe`
    INSERT INTO patch_test_queue (errata_id, target_os, status, machine_version, snapshot, revision, state_value)
    SELECT 'INBOX-' || g, 'ubuntu', 'pending_approval', ${MACHINE_VERSION}, ${sql.jsonb(pendingApproval() as never)}, 0, '"pending_approval"'
    FROM generate_series(1, ${n}) g`);
  await db.query(sql.unsafe`
    UPDATE patch_test_queue SET snapshot = jsonb_set(jsonb_set(snapshot, '{context,entryId}', to_jsonb(id)), '{context,errataId}', to_jsonb(errata_id))`);
  return [...(await db.anyFirst(sql.unsafe`SELECT id FROM patch_test_queue ORDER BY id`))] as number[];
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

const pgServer = await startScratchPostgres('bench-inbox', { durable: true });
try {
  const url = await createMigratedDatabase(pgServer.adminUrl, 'benchinbox');
  const db = await createDb({ url, poolMax: 10 });
  const ids = await seed(db, 2 * N);
  const world = new FakeWorld();
  const common = { db, logger, leaseTtlMs: 60_000, pollMs: 1000, ports: world.ports(), listenUrl: url };
  const owner = await startActorSystem({ ...common, ownerId: 'owner' });
  const other = await startActorSystem({ ...common, ownerId: 'other' });
  const missing = ids.filter((id) => owner.host.snapshotOf(id) === undefined).length;
  if (missing > 0) throw new Error(`${missing} entries are not hosted by the owner replica`);
  const direct: number[] = [];
  const forwarded: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const via = i % 2 === 0 ? owner : other;
    const t0 = performance.now();
    await via.host.send(ids[i]!, { type: 'APPROVE', by: 'bench', reason: 'ok' }, { actor: 'bench' });
    (via === owner ? direct : forwarded).push(performance.now() - t0);
  }
  await other.stop();
  await owner.stop();
  await db.end();
  const f = (x: number) => x.toFixed(1);
  const r = {
    direct_p50: quantile(direct, 0.5),
    direct_p99: quantile(direct, 0.99),
    forwarded_p50: quantile(forwarded, 0.5),
    forwarded_p99: quantile(forwarded, 0.99),
  };
  console.log(`approvals each way: ${N}`);
  console.log(`direct (at the owner)    p50 ${f(r.direct_p50)} ms  p99 ${f(r.direct_p99)} ms`);
  console.log(`forwarded (inbox)        p50 ${f(r.forwarded_p50)} ms  p99 ${f(r.forwarded_p99)} ms`);
  console.log(
    `bench: inbox_direct_p50_ms=${f(r.direct_p50)} inbox_direct_p99_ms=${f(r.direct_p99)} ` +
      `inbox_forwarded_p50_ms=${f(r.forwarded_p50)} inbox_forwarded_p99_ms=${f(r.forwarded_p99)} ` +
      `inbox_added_p50_ms=${f(r.forwarded_p50 - r.direct_p50)} inbox_added_p99_ms=${f(r.forwarded_p99 - r.direct_p99)}`,
  );
} finally {
  await pgServer.stop();
}
