/**
 * The notification delivery loop: sends what effects and alerts queued in the outbox
 * (`orchestrator_notifications`, see services/alerts.ts) — SMTP with nodemailer, webhooks signed
 * with HMAC-SHA256 (`X-SPM-Signature: sha256=<hex>` over the raw body) — with retries and backoff,
 * recording status, attempts and the last error. A mail relay that is down never blocks a patch:
 * the rows wait. Once a minute it also queues the daily digest when it is due.
 */
import { createHmac } from 'node:crypto';
import ky from 'ky';
import nodemailer, { type Transporter } from 'nodemailer';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../persistence/db.ts';
import {
  claimDueNotifications,
  markNotificationAttemptFailed,
  markNotificationSent,
  type DueNotification,
} from '../persistence/sql/notifications.ts';
import { redactUrlSecret, scrubSecrets } from '../redact.ts';
import { enqueueDigestIfDue } from '../services/alerts.ts';
import { smtpTransportOptions } from '../services/smtpTransport.ts';
import { AbortableLoop } from './loop.ts';

export interface NotifierOptions {
  db: Db;
  logger: Logger;
  /** With several replicas: whether this one delivers now (asked each round). Absent: always. */
  lead?: () => Promise<boolean>;
  smtp?:
    | {
        host: string;
        port: number;
        secure: boolean;
        requireTls?: boolean | undefined;
        allowPlaintextAuth?: boolean | undefined;
        user?: string | undefined;
        password?: string | undefined;
        from: string;
      }
    | undefined;
  webhookSecret?: string | undefined;
  pollMs?: number;
  maxAttempts?: number;
}

/**
 * Delivers the outbox.
 * @example
 * const notifier = new Notifier({ db, logger, smtp, webhookSecret }); notifier.start(); … await notifier.stop();
 */
export class Notifier extends AbortableLoop {
  private readonly o: Required<Pick<NotifierOptions, 'pollMs' | 'maxAttempts'>> & NotifierOptions;
  private readonly mail: Transporter | undefined;
  sent = 0;

  constructor(opts: NotifierOptions) {
    super();
    this.o = { pollMs: 2000, maxAttempts: 8, ...opts };
    // AUTH only over TLS unless explicitly allowed (smtpTransportOptions refuses it otherwise).
    this.mail = opts.smtp ? nodemailer.createTransport(smtpTransportOptions(opts.smtp)) : undefined;
  }

  /** Wake the loop now (a message was queued). */
  nudge(): void {
    this.interrupt();
  }

  private lastDigestCheck = 0;

  protected async run(): Promise<void> {
    while (this.active) {
      try {
        // With several replicas one delivers (and queues the digest); the others wait their turn.
        if (this.o.lead && !(await this.o.lead())) {
          if (this.active) await this.sleep(this.o.pollMs);
          continue;
        }
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
    const rows = await claimDueNotifications(this.o.db);
    for (const r of rows) {
      try {
        await this.send(r);
        await markNotificationSent(this.o.db, r.id);
        this.sent++;
      } catch (raw) {
        // A webhook URL is a credential and HTTP errors quote it: never stored or logged in clear.
        const msg = scrubSecrets(coerceError(raw).message, [
          r.recipient,
          this.o.smtp?.password,
          this.o.webhookSecret,
        ]).replace(/https?:\/\/\S+/g, (u) => redactUrlSecret(u));
        const final = r.attempts + 1 >= this.o.maxAttempts;
        const backoffS = Math.min(3600, 5 * 2 ** r.attempts);
        await markNotificationAttemptFailed(this.o.db, r.id, msg, { final, backoffS });
        this.o.logger.warn({ id: r.id, channel: r.channel, err: msg, final }, 'notification not delivered');
      }
    }
    return rows.length;
  }

  private async send(r: DueNotification): Promise<void> {
    if (r.channel === 'email') {
      if (!this.mail || !this.o.smtp) throw new Error('SMTP is not configured (SMTP_HOST)');
      await this.mail.sendMail({
        from: this.o.smtp.from,
        to: r.recipient,
        subject: `[SPM] ${r.subject}`,
        text: r.body,
        headers: { 'X-SPM-Notification': r.idempotency_key },
      });
      return;
    }
    const body = JSON.stringify({
      id: r.id,
      type: r.type,
      errata_id: r.errata_id,
      queue_id: r.queue_id,
      subject: r.subject,
      body: r.body,
      key: r.idempotency_key,
    });
    const headers: Record<string, string> = { 'content-type': 'application/json', 'X-SPM-Delivery': String(r.id) };
    if (this.o.webhookSecret) {
      headers['X-SPM-Signature'] = `sha256=${createHmac('sha256', this.o.webhookSecret).update(body).digest('hex')}`;
    }
    await ky.post(r.recipient, { body, headers, timeout: 10_000, retry: 0 });
  }
}
