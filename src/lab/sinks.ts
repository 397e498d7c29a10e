/**
 * Lab sinks for notifications: an SMTP server (npm smtp-server, real SMTP protocol) that keeps
 * every message, and a webhook receiver that keeps every POST and checks its HMAC-SHA256 signature
 * (`X-SPM-Signature: sha256=<hex>` over the raw body). Never imported by production code (src/lab).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface SunkMail {
  from: string;
  to: string[];
  raw: string;
  subject: string | null;
}

export class SmtpSink {
  readonly messages: SunkMail[] = [];
  /** Refuse the next N messages with a 451 (a relay that is temporarily unavailable). */
  failNext = 0;
  private readonly server: SMTPServer;
  private port = 0;

  constructor() {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          if (this.failNext > 0) {
            this.failNext--;
            const err = Object.assign(new Error('Temporary local problem, try again later'), { responseCode: 451 });
            return callback(err);
          }
          const raw = Buffer.concat(chunks).toString('utf8');
          this.messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw,
            subject: /^Subject: (.*)$/m.exec(raw)?.[1]?.trim() ?? null,
          });
          callback();
        });
      },
    });
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.server.address() as AddressInfo).port;
        resolve({ host: '127.0.0.1', port: this.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export interface SunkWebhook {
  body: unknown;
  signatureValid: boolean;
  headers: Record<string, string | string[] | undefined>;
}

export function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export class WebhookSink {
  readonly received: SunkWebhook[] = [];
  /** Answer the next N deliveries with HTTP 503. */
  failNext = 0;
  private server: Server | undefined;
  private readonly secret: string;

  constructor(secret: string) {
    this.secret = secret;
  }

  serve(): Promise<string> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.failNext > 0) {
          this.failNext--;
          res.writeHead(503);
          return res.end();
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        const given = String(req.headers['x-spm-signature'] ?? '');
        const want = signWebhook(this.secret, raw);
        const signatureValid = given.length === want.length && timingSafeEqual(Buffer.from(given), Buffer.from(want));
        let body: unknown = raw;
        try {
          body = JSON.parse(raw);
        } catch {
          // kept as text
        }
        this.received.push({ body, signatureValid, headers: req.headers });
        res.writeHead(signatureValid ? 204 : 401);
        res.end();
      });
    });
    return new Promise((resolve) =>
      this.server!.listen(0, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/hook`),
      ),
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
