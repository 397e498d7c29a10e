/**
 * `POST /tests/start`: start the test of a given entry, or of the next one a lane would take;
 * `POST /tests/{id}/rollback`: roll the test system back, unless another entry holds it now.
 */
import { AppError } from '../../errors.ts';
import type { ActorHost, EventMeta } from '../../machines/host.ts';
import type { Db } from '../../persistence/db.ts';
import { whenSystemFree } from '../../persistence/sql/lanes.ts';
import { getQueueItem, nextQueued } from '../../persistence/sql/queue.ts';

/** What starting a test needs. */
export interface StartTestDeps {
  db: Db;
  actors: ActorHost;
  /** Whether tests can run (integrations or the lab are wired); else 503. */
  testEngine: { available: boolean; reason: string | null };
}

/** The body of `POST /tests/start`. */
export interface StartTestRequest {
  queue_id?: number | undefined;
  /** Without `queue_id`: the next queued entry of this OS (any OS when absent). */
  target_os?: string | undefined;
  test_system?: { id: number | null; name: string } | undefined;
}

/**
 * Send on the named system only when no other entry holds it (checked and sent under its lock, as
 * the lanes do); else 409 `test_system_busy` naming the holder.
 */
async function sendWhenFree<T>(db: Db, system: string, id: number, send: () => Promise<T>): Promise<T> {
  const r = await whenSystemFree(db, system, id, send);
  if (r.heldBy === null) return r.value;
  throw new AppError(
    409,
    'test_system_busy',
    `test system ${system} is held by entry ${r.heldBy} now (its test runs there): try again once that test ended`,
    { test_system: system, held_by: r.heldBy },
  );
}

/**
 * Send START_TEST to the entry and answer with its test id; on a named test system only when no
 * other entry holds it (409 `test_system_busy`).
 * @example
 * const res = await startTest(deps, { target_os: 'rhel' }, meta);
 * // { queue_id: 9, test_id: 4, status: 'testing', … }
 */
export async function startTest(deps: StartTestDeps, req: StartTestRequest, m: EventMeta) {
  if (!deps.testEngine.available) {
    throw new AppError(503, 'test_engine_unavailable', deps.testEngine.reason ?? 'the test engine is not configured');
  }
  const id = req.queue_id ?? (await nextQueued(deps.db, req.target_os ?? null));
  if (id === null) throw new AppError(409, 'queue_empty', 'no queued entry to test');
  const event = {
    type: 'START_TEST' as const,
    by: m.actor,
    ...(req.test_system ? { testSystem: req.test_system } : {}),
  };
  const system = req.test_system?.name;
  const send = () => deps.actors.send(id, event, m);
  const res = system === undefined ? await send() : await sendWhenFree(deps.db, system, id, send);
  const entry = await getQueueItem(deps.db, id);
  return { queue_id: id, test_id: entry?.test_id ?? null, ...res };
}

/**
 * Send ROLLBACK_TEST, unless the entry's test system is held by another entry now: an entry waiting
 * in pending_approval no longer holds its system, a lane may have started the next test there, and
 * restoring the snapshot under that test would wreck it (and its verdict). 409 `test_system_busy`
 * names the holder; roll back once its test ended.
 * @example await rollBackTestSystem(deps, 12, 'bad patch', meta) // { status: 'rolling_back', … }
 */
export async function rollBackTestSystem(
  deps: Pick<StartTestDeps, 'db' | 'actors'>,
  queueId: number,
  reason: string,
  m: EventMeta,
) {
  const cur = await deps.actors.contextOf(queueId);
  const system = cur?.context.testSystem?.name ?? null;
  const send = () => deps.actors.send(queueId, { type: 'ROLLBACK_TEST', by: m.actor, reason }, m);
  if (system === null) return send();
  // A lane cannot start a test there between the check and the send.
  return sendWhenFree(deps.db, system, queueId, send);
}
