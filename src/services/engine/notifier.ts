/**
 * Notifications through an outbox: effects and alerts insert rows into
 * `orchestrator_notifications` (one per channel and recipient, unique by idempotency key, so a
 * re-run effect adds nothing), and the delivery loop sends them — SMTP with nodemailer, webhooks
 * signed with HMAC-SHA256 (`X-SPM-Signature: sha256=<hex>` over the raw body) — with retries and
 * backoff, recording status, attempts and the last error. A mail relay that is down never blocks
 * a patch: the rows wait.
 */
import { createHmac } from 'node:crypto';
import ky from 'ky';
import nodemailer, { type Transporter } from 'nodemailer';
import { sql } from 'slonik';
import { z } from 'zod';
import { coerceError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../persistence/db.ts';
import { AbortableLoop } from '../../scheduler/loop.ts';
import { loadNotificationConfig } from '../settings.ts';
import { localTime } from '../windows.ts';

export type AlertType = 'test_failed' | 'pending_approval' | 'prod_failed' | 'rollback_initiated' | 'rollback_completed' | 'needs_attention' | 'approved' | 'completed' | 'daily_digest' | 'test';

const pendingRow = z.object({ id: z.number(), errata_id: z.string(), target_os: z.string(), severity: z.string(), success_score: z.number(), hours_pending: z.number().nullable() });

/**
 * The daily digest of pending approvals: due during the hour after `digest_time` in
 * `digest_timezone`, once per local day (the idempotency key carries the date), only when something
 * waits. Returns the number of messages queued.
 */
export async function enqueueDigestIfDue(db: Db, now: number = Date.now()): Promise<number> {
  const cfg = await loadNotificationConfig(db);
  if (!cfg.digest_enabled) return 0;
  const local = localTime(now, cfg.digest_timezone);
  const minutes = local.hh * 60 + local.mm;
  const [h, m] = cfg.digest_time.split(':').map(Number) as [number, number];
  if (minutes < h * 60 + m || minutes >= h * 60 + m + 60) return 0;
  const rows = await db.any(sql.type(pendingRow)`
    SELECT id, errata_id, target_os, severity, success_score, hours_pending::float8 AS hours_pending FROM v_pending_approvals ORDER BY pending_since NULLS LAST, id`);
  if (rows.length === 0) return 0;
  const two = (n: number) => String(n).padStart(2, '0');
  const day = `${local.y}-${two(local.m + 1)}-${two(local.d)}`;
  const lines = rows.map((r) => `#${r.id} ${r.errata_id} (${r.target_os}, ${r.severity}, score ${r.success_score}) waiting ${r.hours_pending ?? '?'} h`);
  return enqueueAlert(db, {
    type: 'daily_digest', key: `digest:${day}`, errataId: null, queueId: null,
    subject: `${rows.length} patch(es) waiting for approval (${day})`,
    body: `Waiting for a decision, oldest first:\n${lines.join('\n')}\n\nDecide in the dashboard (/ui/approvals) or with POST /api/v1/approvals/{id}/approve|reject|snooze.`,
  });
}

/** Queue a message for every configured channel and recipient (idempotent by key). */
export async function enqueueAlert(db: Db, m: { type: AlertType; key: string; errataId: string | null; queueId: number | null; subject: string; body: string }): Promise<number> {
  const cfg = await loadNotificationConfig(db);
  const targets: { channel: 'email' | 'webhook'; recipient: string }[] = [];
  if (cfg.email_enabled) for (const r of cfg.recipients) targets.push({ channel: 'email', recipient: r });
  if (cfg.webhook_enabled && cfg.webhook_url !== '') targets.push({ channel: 'webhook', recipient: cfg.webhook_url });
  let n = 0;
  for (const t of targets) {
    const r = await db.query(sql.unsafe`
      INSERT INTO orchestrator_notifications (type, errata_id, queue_id, recipient, channel, subject, body, idempotency_key)
      VALUES (${m.type}, ${m.errataId}, ${m.queueId}, ${t.recipient}, ${t.channel}, ${m.subject}, ${m.body}, ${m.key})
      ON CONFLICT (idempotency_key, channel, recipient) DO NOTHING`);
    n += r.rowCount;
  }
  return n;
}

export interface NotifierOptions {
  db: Db;
  logger: Logger;
  smtp?: { host: string; port: number; secure: boolean; user?: string | undefined; password?: string | undefined; from: string } | undefined;
  webhookSecret?: string | undefined;
  pollMs?: number;
  maxAttempts?: number;
}

const pending = z.object({ id: z.number(), channel: z.enum(['email', 'webhook']), recipient: z.string(), subject: z.string(), body: z.string(), type: z.string(), errata_id: z.string().nullable(), queue_id: z.number().nullable(), attempts: z.number(), idempotency_key: z.string() });

/** Delivers the outbox. */
export class Notifier extends AbortableLoop {
  private readonly o: Required<Pick<NotifierOptions, 'pollMs' | 'maxAttempts'>> & NotifierOptions;
  private readonly mail: Transporter | undefined;
  sent = 0;

  constructor(opts: NotifierOptions) {
    super();
    this.o = { pollMs: 2000, maxAttempts: 8, ...opts };
    this.mail = opts.smtp
      ? nodemailer.createTransport({ host: opts.smtp.host, port: opts.smtp.port, secure: opts.smtp.secure, ignoreTLS: !opts.smtp.secure, ...(opts.smtp.user ? { auth: { user: opts.smtp.user, pass: opts.smtp.password ?? '' } } : {}) })
      : undefined;
  }

  /** Wake the loop now (a message was queued). */
  nudge(): void {
    this.interrupt();
  }

  private lastDigestCheck = 0;

  protected async run(): Promise<void> {
    while (this.active) {
      try {
        if (Date.now() - this.lastDigestCheck >= 60_000) {
          this.lastDigestCheck = Date.now();
          const n = await enqueueDigestIfDue(this.o.db);
          if (n > 0) this.o.logger.info({ messages: n }, 'daily digest of pending approvals queued');
        }
        while (this.active && (await this.deliverBatch()) > 0);
      } catch (raw) {
        this.o.logger.error({ err: coerceError(raw).message }, 'notifier: delivery round failed');
      }
      if (this.active) await this.sleep(this.o.pollMs);
    }
    this.mail?.close();
  }

  /** Send what is due; returns how many were attempted. */
  async deliverBatch(): Promise<number> {
    const rows = await this.o.db.any(sql.type(pending)`
      UPDATE orchestrator_notifications SET next_attempt_at = now() + interval '5 minutes'
      WHERE id IN (SELECT id FROM orchestrator_notifications WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED)
      RETURNING id, channel, recipient, subject, body, type, errata_id, queue_id, attempts, idempotency_key`);
    for (const r of rows) {
      try {
        await this.send(r);
        await this.o.db.query(sql.unsafe`UPDATE orchestrator_notifications SET status = 'sent', delivered = true, sent_at = now(), attempts = attempts + 1, error_message = NULL WHERE id = ${r.id}`);
        this.sent++;
      } catch (raw) {
        const msg = coerceError(raw).message;
        const final = r.attempts + 1 >= this.o.maxAttempts;
        const backoffS = Math.min(3600, 5 * 2 ** r.attempts);
        await this.o.db.query(sql.unsafe`
          UPDATE orchestrator_notifications SET attempts = attempts + 1, error_message = ${msg},
            status = ${final ? 'failed' : 'pending'}, next_attempt_at = now() + make_interval(secs => ${backoffS})
          WHERE id = ${r.id}`);
        this.o.logger.warn({ id: r.id, channel: r.channel, err: msg, final }, 'notification not delivered');
      }
    }
    return rows.length;
  }

  private async send(r: z.infer<typeof pending>): Promise<void> {
    if (r.channel === 'email') {
      if (!this.mail || !this.o.smtp) throw new Error('SMTP is not configured (SMTP_HOST)');
      await this.mail.sendMail({ from: this.o.smtp.from, to: r.recipient, subject: `[SPM] ${r.subject}`, text: r.body, headers: { 'X-SPM-Notification': r.idempotency_key } });
      return;
    }
    const body = JSON.stringify({ id: r.id, type: r.type, errata_id: r.errata_id, queue_id: r.queue_id, subject: r.subject, body: r.body, key: r.idempotency_key });
    const headers: Record<string, string> = { 'content-type': 'application/json', 'X-SPM-Delivery': String(r.id) };
    if (this.o.webhookSecret) headers['X-SPM-Signature'] = `sha256=${createHmac('sha256', this.o.webhookSecret).update(body).digest('hex')}`;
    await ky.post(r.recipient, { body, headers, timeout: 10_000, retry: 0 });
  }
}
