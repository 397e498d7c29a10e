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

const n = (x: unknown): string => {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 1 ? x.toFixed(2).replace(/\.?0+$/, '') : Number(x.toPrecision(2)).toString();
};
const sign = (x: unknown) => (typeof x === 'number' && x > 0 ? `+${n(x)}` : n(x));

/**
 * A test's judgement (`patch_tests.metrics_delta` of the window judge) as plain text for the
 * approval message: the verdict, score and reasons, then per metric its classification, the
 * windows (samples, medians), the Hodges–Lehmann shift with its interval against the allowed
 * effect, Mann-Whitney U and p, and why. Numbers, not charts (the entry page draws those). Null
 * for a test judged on instants (before issue 13).
 * @example
 * judgementText(test.metrics_delta)
 * // 'Verdict: MARGINAL (a human decides), score 86.7 …\n- running_services: low — baseline n=15 median 3 …'
 */
export function judgementText(j: unknown): string | null {
  const v = j as Record<string, any> | null;
  if (!v || Array.isArray(v) || typeof v.verdict !== 'string') return null;
  const verdict = v.verdict === 'marginal' ? 'MARGINAL (a human decides)' : String(v.verdict).toUpperCase();
  const score =
    v.score === null || v.score === undefined
      ? ''
      : `, score ${n(v.score)}${v.policy ? ` (pass >= ${v.policy.passScore}, marginal >= ${v.policy.marginalScore})` : ''}`;
  const lines = [
    `Verdict: ${verdict}${score}${v.judge === 'salt_only' ? ' (Salt service checks only: Prometheus is not configured)' : ''}`,
  ];
  for (const r of (v.reasons ?? []) as string[]) lines.push(`  reason: ${r}`);
  for (const c of (v.checks ?? []) as any[]) {
    lines.push(
      c.check === 'reboot'
        ? `  reboot: ${c.detail}`
        : `  ${c.check}: ${c.post ?? '—'} (allowed ${c.limit})${c.detail ? ` ${c.detail}` : ''}`,
    );
  }
  for (const m of (v.metrics ?? []) as any[]) {
    const dir = m.direction === 'decrease_bad' ? '-' : m.direction === 'both' ? '+/-' : '+';
    const stats = m.test
      ? `; shift ${sign(m.shift?.estimate)} (${Math.round((m.shift?.confidence ?? 0.95) * 100)} % interval ${sign(m.shift?.low)} .. ${sign(m.shift?.high)}), allowed ${dir}${n(m.allowed)}; U = ${n(m.test.u)}, p = ${n(m.test.pValue)}`
      : '';
    lines.push(
      `- ${m.name}: ${m.classification}${m.critical ? ' (critical)' : ''} — baseline n=${m.baseline?.n ?? 0} median ${n(m.baseline?.median)}, after n=${m.post?.n ?? 0} median ${n(m.post?.median)}${stats}`,
    );
    lines.push(`    ${m.why}`);
  }
  return lines.join('\n');
}
