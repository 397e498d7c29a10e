/** Queries of the timers family. Due timers are claimed with FOR UPDATE SKIP LOCKED; the database clock decides "due". */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export const dueTimer = z.object({
  queue_id: z.number(),
  name: z.string(),
  fire_at: z.number(),
  armed_revision: z.number(),
});

/**
 * Claim due timers of entries this replica owns. A claim older than `reclaimAfterMs` (the replica
 * died between claim and delivery) can be claimed again.
 */
export function claimDueTimers(db: Db, ownerId: string, limit: number, reclaimAfterMs = 30_000) {
  return db.any(sql.type(dueTimer)`
    WITH due AS (
      SELECT t.queue_id, t.name FROM timers t JOIN patch_test_queue q ON q.id = t.queue_id
      WHERE t.fire_at <= now() AND q.owner_id = ${ownerId}
        AND (t.claimed_at IS NULL OR t.claimed_at < now() - make_interval(secs => ${reclaimAfterMs / 1000}))
      ORDER BY t.fire_at
      LIMIT ${limit}
      FOR UPDATE OF t SKIP LOCKED)
    UPDATE timers t SET claimed_by = ${ownerId}, claimed_at = now()
    FROM due WHERE t.queue_id = due.queue_id AND t.name = due.name
    RETURNING t.queue_id, t.name, (extract(epoch FROM t.fire_at) * 1000)::float8 AS fire_at, t.armed_revision`);
}

/** Milliseconds until this replica's next timer (database clock), or null. */
export function msUntilNextTimer(db: Db, ownerId: string) {
  return db.oneFirst(sql.type(z.object({ ms: z.number().nullable() }))`
    SELECT (extract(epoch FROM (min(t.fire_at) - now())) * 1000)::float8 AS ms
    FROM timers t JOIN patch_test_queue q ON q.id = t.queue_id
    WHERE q.owner_id = ${ownerId} AND t.claimed_at IS NULL`);
}

/** A fired timer the actor no longer wanted (state moved on): drop it, unless it was re-armed since. */
export function deleteStaleTimer(db: Db, queueId: number, name: string, armedRevision: number) {
  return db.query(
    sql.unsafe`DELETE FROM timers WHERE queue_id = ${queueId} AND name = ${name} AND armed_revision = ${armedRevision}`,
  );
}

/**
 * Move this replica's failure timers later by `ms` (and release its failed claims of them): the
 * database was unreachable that long, and nothing a step does can be recorded meanwhile, so the
 * outage does not count against the step. Returns how many moved.
 * @example await postponeTimers(db, 'replica-a', ['step_timeout', 'reboot_timeout'], 42_000) // 3
 */
export function postponeTimers(db: Db, ownerId: string, names: readonly string[], ms: number) {
  return db.oneFirst(sql.type(z.object({ n: z.number() }))`
    WITH moved AS (
      UPDATE timers t SET fire_at = t.fire_at + make_interval(secs => ${ms / 1000}), claimed_by = NULL, claimed_at = NULL
      FROM patch_test_queue q
      WHERE q.id = t.queue_id AND q.owner_id = ${ownerId} AND t.name = ANY(${sql.array([...names], 'text')})
        AND (t.claimed_at IS NULL OR t.claimed_by = ${ownerId})
      RETURNING 1)
    SELECT count(*)::int AS n FROM moved`);
}
