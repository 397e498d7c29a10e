/** Build a real actor system (real Postgres, in-memory fake world) for a test. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../../src/persistence/db.ts';
import { startActorSystem, type ActorSystem } from '../../src/machines/system.ts';
import { FakeWorld } from '../../src/lab/fakeWorld.ts';
import { PROD_STATUSES, type Settings, type TargetOs } from '../../src/machines/patch.machine.ts';
import { silentLogger } from './deps.ts';
import { loadJournal } from '../../src/persistence/sql/entries.ts';
import { verifyChain } from '../../src/persistence/journal.ts';

export const FAST_SETTINGS: Settings = {
  waitAfterPatchMs: 30,
  waitAfterRebootMs: 30,
  rebootTimeoutMs: 400,
  stepTimeoutMs: 10_000,
  retryBaseMs: 30,
  retryMaxMs: 200,
  retryMaxAttempts: 5,
};

export async function seedErrata(
  db: Db,
  ids: string[],
  os: TargetOs = 'ubuntu',
  type = 'Security Advisory',
): Promise<void> {
  await db.query(sql.unsafe`
    INSERT INTO errata_cache (errata_id, synopsis, advisory_type, target_os, severity)
    SELECT id, 'synopsis of ' || id, ${type}, ${os}, 'Medium' FROM unnest(${sql.array(ids, 'text')}) AS id
    ON CONFLICT (errata_id) DO NOTHING`);
}

export async function startTestSystem(
  db: Db,
  opts: { world?: FakeWorld; ownerId?: string; reconcile?: boolean; pollMs?: number } = {},
): Promise<{ sys: ActorSystem; world: FakeWorld }> {
  const world = opts.world ?? new FakeWorld();
  const sys = await startActorSystem({
    db,
    logger: silentLogger,
    ownerId: opts.ownerId ?? 'test-replica',
    leaseTtlMs: 30_000,
    pollMs: opts.pollMs ?? 50,
    ports: world.ports(),
    ...(opts.reconcile === undefined ? {} : { reconcile: opts.reconcile }),
  });
  return { sys, world };
}

export async function statusOfEntry(db: Db, id: number): Promise<string> {
  return db.oneFirst(sql.type(z.object({ status: z.string() }))`SELECT status FROM patch_test_queue WHERE id = ${id}`);
}

/**
 * Wait until a committed transition of the entry (on `sys`'s host) has a status satisfying `pred`:
 * driven by the host's commits, not by polling. For tests whose host runs in-process.
 */
export async function committedStatus(
  sys: ActorSystem,
  id: number,
  pred: (s: string) => boolean,
  timeoutMs = 15_000,
): Promise<string> {
  return (await sys.host.committedState(id, (c) => pred(c.status), timeoutMs)).status;
}

/** Poll the database until the entry's status satisfies `pred` (tests whose daemon is another process). */
export async function waitForStatus(
  db: Db,
  id: number,
  pred: (s: string) => boolean,
  timeoutMs = 15_000,
): Promise<string> {
  const until = Date.now() + timeoutMs;
  let s = '';
  while (Date.now() < until) {
    s = await statusOfEntry(db, id);
    if (pred(s)) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`entry ${id} stayed ${s}`);
}

/** Invariants that must hold for any entry at any time. */
export async function checkInvariants(db: Db, id: number): Promise<void> {
  const journal = await loadJournal(db, id);
  const broken = verifyChain(journal);
  if (broken) throw new Error(`entry ${id}: journal chain broken at seq ${broken.seq}: ${broken.problem}`);
  const row = await db.one(sql.type(
    z.object({ status: z.string(), state_value: z.unknown(), revision: z.number(), snapshot: z.unknown() }),
  )`
    SELECT status, state_value, revision, snapshot FROM patch_test_queue WHERE id = ${id}`);
  const value = (row.snapshot as { value: unknown }).value;
  const top = typeof value === 'string' ? value : Object.keys(value as object)[0];
  if (top !== row.status)
    throw new Error(`entry ${id}: status ${row.status} but snapshot state ${JSON.stringify(value)}`);
  if (journal.length !== row.revision)
    throw new Error(`entry ${id}: revision ${row.revision} but ${journal.length} journal rows`);
  const last = journal[journal.length - 1];
  if (last && last.to_state.split('.')[0] !== row.status)
    throw new Error(`entry ${id}: last journal row ends in ${last.to_state}, status is ${row.status}`);
  if (journal.some((j) => (PROD_STATUSES as readonly string[]).includes(j.to_state.split('.')[0]!))) {
    const approvals = await db.oneFirst(
      sql.type(
        z.object({ n: z.number() }),
      )`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${id} AND action = 'approved'`,
    );
    if (approvals === 0) throw new Error(`entry ${id}: reached production without an approval row`);
    const passed = journal.some((j) => j.to_state === 'passed');
    if (!passed) throw new Error(`entry ${id}: reached production without a passed test`);
  }
}
