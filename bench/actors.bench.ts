/**
 * `npm run bench:actors` — durable actor host figures (a table, not a test):
 * - hydrate 10k and 100k persisted actors: time from start to serving, heap per actor;
 * - persisted transitions/s with 8 concurrent actors, against `pgbench -N` (8 clients) on the same
 *   server in the same run, and their ratio.
 * Uses a durable (fsync on) embedded PostgreSQL, or TEST_DATABASE_ADMIN_URL. Needs `pgbench` on PATH
 * (Debian: postgresql-client) for the comparison.
 * `--quick` skips the 100k hydration.
 * Last line: `bench: hydrate_10k_s=… hydrate_100k_s=… heap_per_actor_bytes=… transitions_per_s=… pgbench_tps=… ratio=…`
 */
import { execFileSync } from 'node:child_process';
import { sql } from 'slonik';
import { z } from 'zod';
import { pino } from 'pino';
import { createActor } from 'xstate';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { startActorSystem } from '../src/machines/system.ts';
import { MACHINE_VERSION, patchMachine, type Settings } from '../src/machines/patch.machine.ts';
import { createDb, type Db } from '../src/persistence/db.ts';
import { createMigratedDatabase, startScratchPostgres } from '../test/helpers/pgServer.ts';

const logger = pino({ level: 'warn' });
const SETTINGS: Settings = {
  waitAfterPatchMs: 0,
  waitAfterRebootMs: 0,
  rebootTimeoutMs: 3_600_000,
  stepTimeoutMs: 3_600_000,
  retryBaseMs: 1000,
  retryMaxMs: 10_000,
  retryMaxAttempts: 5,
};
const gc = (globalThis as { gc?: () => void }).gc;

/** A persisted pending_approval snapshot (no running effect), as a template. */
function template(): unknown {
  const resolved = patchMachine.resolveState({
    value: 'pending_approval',
    context: {
      ...createActor(patchMachine, {
        input: { entryId: 0, errataId: 'X', targetOs: 'ubuntu', settings: SETTINGS },
      }).getSnapshot().context,
      attempt: 1,
      test: {
        snapshotId: 's',
        baselineTaken: true,
        actionIds: [1],
        applyMessage: 'Completed',
        rebootRequired: false,
        rebootActionId: null,
        verdict: 'pass',
        evidence: { checks: [] },
        startedAt: 0,
        finishedAt: 0,
      },
    },
  });
  return patchMachine.getPersistedSnapshot(resolved);
}

async function seed(db: Db, n: number): Promise<void> {
  await db.query(
    sql.unsafe`INSERT INTO errata_cache (errata_id, advisory_type, target_os) SELECT 'BENCH-' || g, 'Security Advisory', 'ubuntu' FROM generate_series(1, ${n}) g`,
  );
  await db.query(sql.unsafe`
    INSERT INTO patch_test_queue (errata_id, target_os, status, machine_version, snapshot, revision, state_value)
    SELECT 'BENCH-' || g, 'ubuntu', 'pending_approval', ${MACHINE_VERSION}, ${sql.jsonb(template() as never)}, 0, '"pending_approval"' FROM generate_series(1, ${n}) g`);
  await db.query(sql.unsafe`
    UPDATE patch_test_queue SET snapshot = jsonb_set(jsonb_set(snapshot, '{context,entryId}', to_jsonb(id)), '{context,errataId}', to_jsonb(errata_id))`);
}

async function hydrate(adminUrl: string, n: number): Promise<{ seconds: number; heapPerActor: number }> {
  const url = await createMigratedDatabase(adminUrl, `bench${n}`);
  const db = await createDb({ url, poolMax: 10 });
  await seed(db, n);
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const sys = await startActorSystem({
    db,
    logger,
    ownerId: 'bench',
    leaseTtlMs: 600_000,
    pollMs: 60_000,
    ports: new FakeWorld().ports(),
  });
  const seconds = (performance.now() - t0) / 1000;
  if (sys.host.size !== n) throw new Error(`hydrated ${sys.host.size} of ${n}`);
  gc?.();
  const heapPerActor = (process.memoryUsage().heapUsed - heap0) / n;
  await sys.stop();
  await db.end();
  return { seconds, heapPerActor };
}

async function transitionsPerSecond(adminUrl: string, actors: number, ms: number): Promise<number> {
  const url = await createMigratedDatabase(adminUrl, 'benchtx');
  const db = await createDb({ url, poolMax: 20 });
  await seed(db, actors);
  const sys = await startActorSystem({
    db,
    logger,
    ownerId: 'bench',
    leaseTtlMs: 600_000,
    pollMs: 60_000,
    ports: new FakeWorld().ports(),
  });
  const ids = sys.host.ids();
  const count = () =>
    db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_transitions`);
  const before = await count();
  const until = performance.now() + ms;
  const t0 = performance.now();
  // Each loop: pending_approval --SNOOZE--> snoozed --TIMER--> passed --notify done--> pending_approval (3 persisted transitions).
  await Promise.all(
    ids.map(async (id) => {
      while (performance.now() < until) {
        await sys.host.send(
          id,
          { type: 'SNOOZE', by: 'bench', reason: 'bench', until: sys.clock.now() + 3_600_000 },
          { actor: 'bench' },
        );
        await sys.host.send(id, { type: 'TIMER', name: 'snooze' }, { actor: 'bench' });
        for (let i = 0; i < 5000 && sys.host.snapshotOf(id)?.snapshot.value !== 'pending_approval'; i++)
          await new Promise((r) => setTimeout(r, 1));
        await sys.host.flush();
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  await sys.host.flush();
  const n = (await count()) - before;
  await sys.stop();
  await db.end();
  return n / elapsed;
}

function pgbench(adminUrl: string, clients: number, seconds: number): number | null {
  const u = new URL(adminUrl);
  const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password) };
  const args = ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username)];
  try {
    execFileSync(
      'psql',
      [...args, '-d', 'postgres', '-qc', 'DROP DATABASE IF EXISTS pgbench_cmp', '-c', 'CREATE DATABASE pgbench_cmp'],
      { env, stdio: 'ignore' },
    );
    execFileSync('pgbench', [...args, '-i', '-q', '-s', '10', 'pgbench_cmp'], { env, stdio: 'ignore' });
    const out = execFileSync(
      'pgbench',
      [...args, '-N', '-n', '-c', String(clients), '-j', '2', '-T', String(seconds), 'pgbench_cmp'],
      { env, encoding: 'utf8' },
    );
    const m = /tps = ([\d.]+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch (raw) {
    console.error(`pgbench unavailable: ${(raw as Error).message.split('\n')[0]}`);
    return null;
  }
}

const pgServer = await startScratchPostgres('bench', { durable: true });
try {
  const h10k = await hydrate(pgServer.adminUrl, 10_000);
  console.error(`hydrate 10k: ${h10k.seconds.toFixed(2)} s, ${Math.round(h10k.heapPerActor)} B/actor`);
  const tps = await transitionsPerSecond(pgServer.adminUrl, 8, 10_000);
  console.error(`transitions/s: ${tps.toFixed(0)}`);
  const pg = pgbench(pgServer.adminUrl, 8, 10);
  console.error(`pgbench -N tps: ${pg}`);
  const h100k = process.argv.includes('--quick')
    ? { seconds: NaN, heapPerActor: h10k.heapPerActor }
    : await hydrate(pgServer.adminUrl, 100_000);
  console.error(`hydrate 100k: ${h100k.seconds.toFixed(2)} s, ${Math.round(h100k.heapPerActor)} B/actor`);
  const rows = [
    ['hydrate 10k actors (s to serving)', h10k.seconds.toFixed(2)],
    ['hydrate 100k actors (s to serving)', h100k.seconds.toFixed(2)],
    ['heap per actor (bytes, 100k)', Math.round(h100k.heapPerActor).toString()],
    ['persisted transitions/s (8 actors)', tps.toFixed(0)],
    ['pgbench -N tps (8 clients, same server)', pg === null ? 'n/a' : pg.toFixed(0)],
    ['ratio transitions/s ÷ pgbench tps', pg === null ? 'n/a' : (tps / pg).toFixed(2)],
  ];
  const w = Math.max(...rows.map((r) => r[0]!.length));
  console.log(`${'metric'.padEnd(w)}  value`);
  for (const [k, v] of rows) console.log(`${k!.padEnd(w)}  ${v}`);
  console.log(
    `bench: hydrate_10k_s=${h10k.seconds.toFixed(2)} hydrate_100k_s=${h100k.seconds.toFixed(2)} heap_per_actor_bytes=${Math.round(h100k.heapPerActor)} transitions_per_s=${tps.toFixed(0)} pgbench_tps=${pg === null ? 'n/a' : pg.toFixed(0)} ratio=${pg === null ? 'n/a' : (tps / pg).toFixed(2)}`,
  );
} finally {
  await pgServer.stop();
}
