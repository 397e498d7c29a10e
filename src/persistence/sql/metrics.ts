/**
 * What `/metrics` reads from the database at scrape time (services/metrics.ts): a handful of
 * aggregates over indexed or small tables, run one after the other on one connection per scrape.
 * The figures are the database's, so they are the same on every replica.
 */
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/**
 * Entries per `patch_test_queue.status` (statuses without entries are absent: the caller adds 0s).
 * @example await countEntriesPerStatus(db); // [{ status: 'queued', n: 40 }, { status: 'pending_approval', n: 2 }]
 */
export function countEntriesPerStatus(db: CommonQueryMethods) {
  return db.any(sql.type(z.object({ status: z.string(), n: z.number() }))`
    SELECT status, count(*)::int AS n FROM patch_test_queue GROUP BY status`);
}

/**
 * Entries waiting for approval and the hours since the oldest of them entered `pending_approval`
 * (its latest transition there, as `v_pending_approvals` reads it; the row's `updated_at` for an
 * entry without one); 0 hours when none waits.
 * @example await readPendingApprovalAge(db); // { n: 2, oldest_hours: 51.3 }
 */
export function readPendingApprovalAge(db: CommonQueryMethods) {
  return db.one(sql.type(z.object({ n: z.number(), oldest_hours: z.number() }))`
    SELECT count(*)::int AS n, coalesce(extract(epoch FROM now() - min(since)) / 3600.0, 0)::float8 AS oldest_hours
    FROM (
      SELECT coalesce((SELECT max(t.at) FROM patch_transitions t WHERE t.queue_id = q.id AND t.to_state = 'pending_approval'), q.updated_at) AS since
      FROM patch_test_queue q WHERE q.status = 'pending_approval'
    ) p`);
}

/**
 * Production deployments per `patch_deployments.status` (absent statuses: 0 by the caller).
 * @example await countDeploymentsPerStatus(db); // [{ status: 'completed', n: 3 }]
 */
export function countDeploymentsPerStatus(db: CommonQueryMethods) {
  return db.any(sql.type(z.object({ status: z.string(), n: z.number() }))`
    SELECT status, count(*)::int AS n FROM patch_deployments GROUP BY status`);
}

/**
 * The outbox per channel: messages waiting for delivery, and failed delivery attempts so far
 * (every attempt of a message not sent, all but the last of a sent one; attempts only grow, so
 * this is a counter).
 * @example await readNotificationOutbox(db); // [{ channel: 'email', pending: 1, failures: 4 }]
 */
export function readNotificationOutbox(db: CommonQueryMethods) {
  return db.any(sql.type(z.object({ channel: z.string(), pending: z.number(), failures: z.number() }))`
    SELECT channel, count(*) FILTER (WHERE status = 'pending')::int AS pending,
           (coalesce(sum(attempts), 0) - count(*) FILTER (WHERE status = 'sent' AND attempts > 0))::int AS failures
    FROM orchestrator_notifications GROUP BY channel`);
}

/**
 * Unix time (seconds) of the last completed UYUNI sync; 0 before the first.
 * @example await readLastSyncSuccess(db); // 1767225600.5
 */
export function readLastSyncSuccess(db: CommonQueryMethods) {
  return db.oneFirst(sql.type(z.object({ at: z.number() }))`
    SELECT coalesce(extract(epoch FROM max(finished_at)), 0)::float8 AS at FROM sync_runs WHERE status = 'completed'`);
}

/**
 * Sync runs after `afterId` in id order, up to `limit` (the caller counts the finished ones up to
 * the first still running: only one runs at a time, so nothing finishes behind it).
 * @example await listSyncRunsAfter(db, 41, 500); // [{ id: 42, status: 'completed', seconds: 12.5 }]
 */
export function listSyncRunsAfter(db: CommonQueryMethods, afterId: number, limit: number) {
  return db.any(sql.type(z.object({ id: z.number(), status: z.string(), seconds: z.number().nullable() }))`
    SELECT id, status, extract(epoch FROM finished_at - started_at)::float8 AS seconds
    FROM sync_runs WHERE id > ${afterId} ORDER BY id LIMIT ${limit}`);
}
