/**
 * Queries of the test lanes: which queue entry occupies a test system, which one a free lane takes
 * next, and whether a lane's entry still holds its system.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { TEST_SYSTEM_OCCUPANCY } from '../../machines/patch.machine.ts';
import type { Db } from '../db.ts';

/**
 * SQL: entries that occupy a test system (its name in the persisted context). Which states do is
 * the machine's fact (`TEST_SYSTEM_OCCUPANCY`, from its state tags and step table): a test running,
 * the test system rolling back, a retry of a test step, a human needed during the test or its
 * rollback.
 */
const OCCUPYING = sql.fragment`(
  status = ANY(${sql.array(TEST_SYSTEM_OCCUPANCY.statuses, 'text')})
  OR (status = 'pending_retry' AND snapshot->'context'->'retry'->>'step' = ANY(${sql.array(TEST_SYSTEM_OCCUPANCY.retrySteps, 'text')}))
  OR (status = 'needs_attention' AND snapshot->'context'->'attention'->>'phase' = ANY(${sql.array(TEST_SYSTEM_OCCUPANCY.attentionPhases, 'text')})))`;

const idRow = z.object({ id: z.number() });

/**
 * The entry occupying a test system (after a restart it keeps its lane), lowest id first.
 * @example await findLaneOccupant(db, 'test-ubuntu-1') // 7 | null
 */
export function findLaneOccupant(db: Db, systemName: string) {
  return db.maybeOneFirst(sql.type(idRow)`
    SELECT id FROM patch_test_queue
    WHERE ${OCCUPYING} AND snapshot->'context'->'testSystem'->>'name' = ${systemName} ORDER BY id LIMIT 1`);
}

/**
 * Every entry occupying a test system but `except`: who else holds it now.
 * @example await otherOccupants(db, 'test-ubuntu-1', 12) // [7]
 */
export function otherOccupants(db: Db, systemName: string, except: number) {
  return db.anyFirst(sql.type(idRow)`
    SELECT id FROM patch_test_queue
    WHERE ${OCCUPYING} AND snapshot->'context'->'testSystem'->>'name' = ${systemName} AND id <> ${except}
    ORDER BY id`);
}

/** This process's holders of a test-system lock, one at a time (see `withTestSystemLock`). */
let lockChain: Promise<unknown> = Promise.resolve();

/**
 * Run `fn` under the test system's lock (a PostgreSQL advisory lock: one holder on all replicas).
 * Whoever starts a test on a system and whoever rolls one back there checks that nobody else holds
 * it and sends the event under this lock, so a check and the transition it allows cannot
 * interleave with another's.
 *
 * The lock is transaction-scoped on a connection of its own, begun by hand so that `fn` may use the
 * pool (the event's write): it ends with the transaction, and if this process stops talking to the
 * server while holding it, `idle_in_transaction_session_timeout` ends it there. A process holds at
 * most one such lock at a time (the others queue here), so a holder always finds a pool
 * connection for `fn`: no pool exhaustion however many requests wait.
 * @example await withTestSystemLock(db, 'test-ubuntu-1', async () => { … check, then send … });
 */
export function withTestSystemLock<T>(db: Db, systemName: string, fn: () => Promise<T>): Promise<T> {
  const run = lockChain.then(() =>
    db.connect(async (conn) => {
      await conn.query(sql.unsafe`BEGIN`);
      try {
        await conn.query(sql.unsafe`SET LOCAL idle_in_transaction_session_timeout = '300s'`);
        await conn.query(
          sql.unsafe`SELECT pg_advisory_xact_lock(hashtextextended(${`spm-orchestrator test system ${systemName}`}, 0))`,
        );
        const out = await fn();
        await conn.query(sql.unsafe`COMMIT`);
        return out;
      } catch (raw) {
        await conn.query(sql.unsafe`ROLLBACK`).catch(() => undefined);
        throw raw;
      }
    }),
  );
  lockChain = run.catch(() => undefined);
  return run;
}

/**
 * Run `fn` for entry `id` on the system only if no other entry holds it: checked and run under the
 * system's lock (`withTestSystemLock`). The holder's id when another entry holds it (`fn` not run).
 * @example const r = await whenSystemFree(db, 'test-ubuntu-1', 12, () => send()); // { heldBy: 7 } | { value }
 */
export function whenSystemFree<T>(
  db: Db,
  systemName: string,
  id: number,
  fn: () => Promise<T>,
): Promise<{ heldBy: number } | { heldBy: null; value: T }> {
  return withTestSystemLock(db, systemName, async () => {
    const holder = (await otherOccupants(db, systemName, id))[0];
    return holder !== undefined ? { heldBy: holder } : { heldBy: null, value: await fn() };
  });
}

/**
 * The queued entry a free lane of this OS takes next: highest success score, then priority (an
 * operator's override first), then the oldest; entries other lanes hold are skipped.
 * @example await nextQueuedForLane(db, 'ubuntu', [7, 9]) // 12 | null
 */
export function nextQueuedForLane(db: Db, os: string, held: number[]) {
  return db.maybeOneFirst(sql.type(idRow)`
    SELECT id FROM patch_test_queue
    WHERE status = 'queued' AND target_os = ${os} AND NOT (id = ANY(${sql.array(held, 'int8')}))
    ORDER BY success_score DESC, COALESCE(priority_override, priority) DESC, queued_at, id LIMIT 1`);
}

/**
 * An entry's status and the test system it runs on.
 * @example await getLaneEntry(db, 7) // { status: 'queued', system: null }
 */
export function getLaneEntry(db: Db, id: number) {
  return db.maybeOne(sql.type(z.object({ status: z.string(), system: z.string().nullable() }))`
    SELECT status, snapshot->'context'->'testSystem'->>'name' AS system FROM patch_test_queue WHERE id = ${id}`);
}

/**
 * Does the entry still occupy its test system? null when it does not exist.
 * @example while (await isOccupyingTestSystem(db, 7)) await sleep(500);
 */
export function isOccupyingTestSystem(db: Db, id: number) {
  return db.maybeOneFirst(sql.type(z.object({ busy: z.boolean() }))`
    SELECT ${OCCUPYING} AS busy FROM patch_test_queue WHERE id = ${id}`);
}
