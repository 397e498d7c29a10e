/**
 * The one error classification and the one backoff (STYLE rule 5; issue 11). An error is
 * *transient* — a dependency was unreachable or busy, trying again later may work — when:
 *
 * - it says so itself (`transient: true`: the integrations' own errors, `TransientError`);
 * - it is a PostgreSQL error of a class that means "the server or the connection, not the query":
 *   08 (connection exception), 53 (insufficient resources), 57P01–57P03 (admin shutdown, crash
 *   shutdown, cannot connect now), or a serialization failure / deadlock (40001, 40P01);
 * - it is a socket error (ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE, …), or a driver error that
 *   reports a lost connection (pg: "Connection terminated", slonik: ConnectionError), anywhere in
 *   its `cause` chain.
 *
 * Everything else is permanent: a constraint violation, a bad reply, a programming error. Callers
 * never read `transient` themselves; they ask {@link isTransient}.
 */

/** An error an integration raises when a dependency is unreachable: the caller retries with backoff. */
export class TransientError extends Error {
  readonly transient = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TransientError';
  }
}

/** SQLSTATEs (exact) and classes (two characters) that are transient. */
const TRANSIENT_SQLSTATE = new Set(['40001', '40P01', '57P01', '57P02', '57P03']);
const TRANSIENT_SQLSTATE_CLASS = new Set(['08', '53']);
/** errno codes of the socket layer that mean the peer or the path went away. */
const TRANSIENT_ERRNO = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
/** Driver errors with no code of their own that mean the connection was lost. */
const LOST_CONNECTION =
  /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down)|Query read timeout|timeout exceeded when trying to connect/i;
const TRANSIENT_NAMES = new Set(['ConnectionError', 'BackendTerminatedError', 'BackendTerminatedUnexpectedlyError']);

/** Is this error (or anything in its `cause` chain) transient? */
export function isTransient(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && e !== undefined && depth < 8; depth++) {
    if (typeof e !== 'object') return false;
    const x = e as { transient?: unknown; code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    if (x.transient === true) return true;
    if (x.transient === false) return false;
    if (typeof x.code === 'string') {
      if (
        TRANSIENT_SQLSTATE.has(x.code) ||
        (/^[0-9A-Z]{5}$/.test(x.code) && TRANSIENT_SQLSTATE_CLASS.has(x.code.slice(0, 2)))
      )
        return true;
      if (TRANSIENT_ERRNO.has(x.code)) return true;
    }
    if (typeof x.name === 'string' && TRANSIENT_NAMES.has(x.name)) return true;
    if (typeof x.message === 'string' && LOST_CONNECTION.test(x.message)) return true;
    e = x.cause;
  }
  return false;
}

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** Spread: the delay is drawn from [d × (1 − jitter), d × (1 + jitter)]; 0.5 by default. */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (1-based): exponential, capped, jittered so replicas that
 * failed together do not retry together.
 * @example
 * await sleep(backoffDelay(attempt, { baseMs: 100, maxMs: 5000 }));
 */
export function backoffDelay(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const d = Math.min(p.maxMs, p.baseMs * 2 ** Math.max(0, attempt - 1));
  const j = p.jitter ?? 0.5;
  return Math.max(0, Math.round(d * (1 - j + 2 * j * random())));
}

/** Sleep `ms`; rejects at once when `signal` aborts (a stopped actor or loop waits no further). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      },
      { once: true },
    );
  });
}
