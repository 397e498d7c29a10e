/**
 * Error vocabulary shared by every layer.
 *
 * - `coerceError` turns any thrown value into an `Error` (STYLE rule 4: normalise at every catch).
 * - `AppError` carries a stable machine-readable `code`, an HTTP status and JSON-safe `details`; the
 *   HTTP layer renders it as `{"error":{"code","message","details"}}` and never shows a stack.
 */

/**
 * Normalise anything thrown into an Error, keeping the original as `cause`.
 * @example
 * try { await work() } catch (raw) { const err = coerceError(raw); log.error({ err }, 'work failed') }
 */
export function coerceError(raw: unknown): Error {
  if (raw instanceof Error) return raw;
  if (typeof raw === 'string') return new Error(raw);
  try {
    return new Error(`non-error thrown: ${JSON.stringify(raw)}`, { cause: raw });
  } catch {
    return new Error('non-error thrown (not serialisable)', { cause: raw });
  }
}

/**
 * An error whose message is safe to show to an API client.
 * @example
 * throw new AppError(409, 'invalid_transition', 'entry 7 is approved', { state: 'approved' })
 */
export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  constructor(status: number, code: string, message: string, details: unknown = null, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AppError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Raised when configuration is invalid; `problems` holds one line per variable. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Exit code for a configuration problem (sysexits EX_CONFIG); systemd does not restart on it. */
export const EXIT_CONFIG = 78;
