/**
 * How the notifier talks to the mail relay: TLS from the first byte (`secure`, port 465), STARTTLS
 * required before anything is sent (`requireTls`, port 587), or plain SMTP. SMTP AUTH is sent only
 * over TLS unless `allowPlaintextAuth` says a clear-text password is accepted (a relay on the same
 * host); `parseConfig` refuses the combination at start, and this refuses it again for callers that
 * build the options themselves.
 */
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';

export interface SmtpSettings {
  host: string;
  port: number;
  secure: boolean;
  requireTls?: boolean | undefined;
  allowPlaintextAuth?: boolean | undefined;
  user?: string | undefined;
  password?: string | undefined;
}

/**
 * nodemailer's transport options for `smtp`.
 * @throws Error when AUTH would go over a connection without TLS and that is not allowed
 * @example
 * nodemailer.createTransport(smtpTransportOptions(config.smtp));
 */
export function smtpTransportOptions(smtp: SmtpSettings): SMTPTransport.Options {
  const tls = smtp.secure || smtp.requireTls === true;
  if (smtp.user && !tls && smtp.allowPlaintextAuth !== true) {
    throw new Error(
      'SMTP AUTH without TLS is refused: set SMTP_SECURE=true or SMTP_REQUIRE_TLS=true (or SMTP_ALLOW_PLAINTEXT_AUTH=true for a local relay)',
    );
  }
  return {
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    ...(smtp.secure ? {} : smtp.requireTls ? { requireTLS: true } : { ignoreTLS: true }),
    ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.password ?? '' } } : {}),
  };
}
