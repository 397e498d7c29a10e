/**
 * pino JSON logs to stdout (journald-friendly). Secrets are redacted by path; free-text messages
 * must never interpolate a secret in the first place.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths censored in every log line. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'apiKey',
  '*.apiKey',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-auth-token"]',
  'headers.authorization',
  'headers.cookie',
  'config.uyuni.password',
  'config.salt.password',
  'config.smtp.password',
  'config.webhookSecret',
  'config.nvdApiKey',
  'config.database.url',
];

/**
 * Build the root logger.
 * @example
 * const log = createLogger({ level: 'info', instanceId: 'host-1' });
 */
export function createLogger(opts: {
  level: string;
  instanceId: string;
  destination?: pino.DestinationStream;
}): Logger {
  return pino(
    {
      level: opts.level,
      base: { svc: 'spm-orchestrator', instance: opts.instanceId },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
