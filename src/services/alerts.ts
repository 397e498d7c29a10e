/**
 * Alerts into the notification outbox: a message is queued for every configured channel and
 * recipient (`orchestrator_config.notification_config`), idempotent by key, so an effect that runs
 * again queues nothing twice; the daily digest of pending approvals is one such message a day.
 * Delivery is the notifier loop's (scheduler/notifier.ts).
 */
import type { Db } from '../persistence/db.ts';
import { insertNotification, listPendingApprovalsForDigest } from '../persistence/sql/notifications.ts';
import { loadNotificationConfig } from './settings.ts';
import { localTime } from './windows.ts';

export type AlertType =
  | 'test_failed'
  | 'pending_approval'
  | 'prod_failed'
  | 'rollback_initiated'
  | 'rollback_completed'
  | 'needs_attention'
  | 'approved'
  | 'completed'
  | 'daily_digest'
  | 'test';

/**
 * The daily digest of pending approvals: due during the hour after `digest_time` in
 * `digest_timezone`, once per local day (the idempotency key carries the date), only when something
 * waits. Returns the number of messages queued.
 * @example if ((await enqueueDigestIfDue(db)) > 0) logger.info('digest queued');
 */
export async function enqueueDigestIfDue(db: Db, now: number = Date.now()): Promise<number> {
  const cfg = await loadNotificationConfig(db);
  if (!cfg.digest_enabled) return 0;
  const local = localTime(now, cfg.digest_timezone);
  const minutes = local.hh * 60 + local.mm;
  const [h, m] = cfg.digest_time.split(':').map(Number) as [number, number];
  if (minutes < h * 60 + m || minutes >= h * 60 + m + 60) return 0;
  const rows = await listPendingApprovalsForDigest(db);
  if (rows.length === 0) return 0;
  const two = (n: number) => String(n).padStart(2, '0');
  const day = `${local.y}-${two(local.m + 1)}-${two(local.d)}`;
  const lines = rows.map(
    (r) =>
      `#${r.id} ${r.errata_id} (${r.target_os}, ${r.severity}, score ${r.success_score}) ` +
      `waiting ${r.hours_pending ?? '?'} h`,
  );
  return enqueueAlert(db, {
    type: 'daily_digest',
    key: `digest:${day}`,
    errataId: null,
    queueId: null,
    subject: `${rows.length} patch(es) waiting for approval (${day})`,
    body:
      `Waiting for a decision, oldest first:\n${lines.join('\n')}\n\n` +
      'Decide in the dashboard (/ui/approvals) or with POST /api/v1/approvals/{id}/approve|reject|snooze.',
  });
}

/**
 * Queue a message for every configured channel and recipient (idempotent by key); returns how many
 * rows were added.
 * @example await enqueueAlert(db, { type: 'test', key: 'k1', errataId: null, queueId: null, subject: 's', body: 'b' });
 */
export async function enqueueAlert(
  db: Db,
  m: { type: AlertType; key: string; errataId: string | null; queueId: number | null; subject: string; body: string },
): Promise<number> {
  const cfg = await loadNotificationConfig(db);
  const targets: { channel: 'email' | 'webhook'; recipient: string }[] = [];
  if (cfg.email_enabled) for (const r of cfg.recipients) targets.push({ channel: 'email', recipient: r });
  if (cfg.webhook_enabled && cfg.webhook_url !== '') targets.push({ channel: 'webhook', recipient: cfg.webhook_url });
  let n = 0;
  for (const t of targets) n += await insertNotification(db, { ...m, ...t });
  return n;
}
