/**
 * Queries of the notification outbox (`orchestrator_notifications`): one row per message, channel
 * and recipient, unique by idempotency key, so a re-run effect queues nothing twice.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/**
 * Queue one message for one channel and recipient; 0 when that key was queued for it already.
 * @example await insertNotification(db, { type: 'test', key: 'k1', errataId: null, queueId: null,
 *   recipient: 'ops@example.com', channel: 'email', subject: 's', body: 'b' }) // 1
 */
export async function insertNotification(
  db: Db,
  m: {
    type: string;
    key: string;
    errataId: string | null;
    queueId: number | null;
    recipient: string;
    channel: 'email' | 'webhook';
    subject: string;
    body: string;
  },
): Promise<number> {
  const r = await db.query(sql.unsafe`
    INSERT INTO orchestrator_notifications
      (type, errata_id, queue_id, recipient, channel, subject, body, idempotency_key)
    VALUES (${m.type}, ${m.errataId}, ${m.queueId}, ${m.recipient}, ${m.channel}, ${m.subject}, ${m.body}, ${m.key})
    ON CONFLICT (idempotency_key, channel, recipient) DO NOTHING`);
  return r.rowCount;
}

const pendingApprovalRow = z.object({
  id: z.number(),
  errata_id: z.string(),
  target_os: z.string(),
  severity: z.string(),
  success_score: z.number(),
  hours_pending: z.number().nullable(),
});

/**
 * What the daily digest lists: entries waiting for a decision, oldest first.
 * @example const rows = await listPendingApprovalsForDigest(db);
 */
export function listPendingApprovalsForDigest(db: Db) {
  return db.any(sql.type(pendingApprovalRow)`
    SELECT id, errata_id, target_os, severity, success_score, hours_pending::float8 AS hours_pending
    FROM v_pending_approvals ORDER BY pending_since NULLS LAST, id`);
}

const dueRow = z.object({
  id: z.number(),
  channel: z.enum(['email', 'webhook']),
  recipient: z.string(),
  subject: z.string(),
  body: z.string(),
  type: z.string(),
  errata_id: z.string().nullable(),
  queue_id: z.number().nullable(),
  attempts: z.number(),
  idempotency_key: z.string(),
});
export type DueNotification = z.infer<typeof dueRow>;

/**
 * Take up to 20 due messages for delivery. Claimed by pushing `next_attempt_at` 5 minutes out in
 * the same statement (SKIP LOCKED: two notifiers never take the same row); a notifier that dies
 * mid-send leaves its rows to be retried after those 5 minutes.
 * @example for (const r of await claimDueNotifications(db)) await send(r);
 */
export function claimDueNotifications(db: Db) {
  return db.any(sql.type(dueRow)`
    UPDATE orchestrator_notifications SET next_attempt_at = now() + interval '5 minutes'
    WHERE id IN (SELECT id FROM orchestrator_notifications WHERE status = 'pending' AND next_attempt_at <= now()
                 ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED)
    RETURNING id, channel, recipient, subject, body, type, errata_id, queue_id, attempts, idempotency_key`);
}

/** @example await markNotificationSent(db, 12); */
export function markNotificationSent(db: Db, id: number) {
  return db.query(sql.unsafe`
    UPDATE orchestrator_notifications SET status = 'sent', delivered = true, sent_at = now(), attempts = attempts + 1,
      error_message = NULL
    WHERE id = ${id}`);
}

/**
 * A delivery attempt failed: retried after `backoffS`, or `failed` for good when `final`.
 * @example await markNotificationAttemptFailed(db, 12, 'ECONNREFUSED', { final: false, backoffS: 10 });
 */
export function markNotificationAttemptFailed(
  db: Db,
  id: number,
  error: string,
  o: { final: boolean; backoffS: number },
) {
  return db.query(sql.unsafe`
    UPDATE orchestrator_notifications SET attempts = attempts + 1, error_message = ${error},
      status = ${o.final ? 'failed' : 'pending'}, next_attempt_at = now() + make_interval(secs => ${o.backoffS})
    WHERE id = ${id}`);
}
