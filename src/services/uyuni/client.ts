/**
 * UYUNI XML-RPC client (`xmlrpc` package) for `<UYUNI_URL>/rpc/api`.
 *
 * - One session per cycle shared by all workers (`withSession`: one auth.login, one auth.logout).
 *   A `withSession` called inside another one (same async context: e.g. the risk profiling of the
 *   errata a sync just queued) reuses the outer session instead of logging in again.
 * - When a `withSession` ends (normally or because one worker failed), its session is closed for
 *   its workers: calls still queued fail at once with `UyuniSessionClosed`, no retry or re-login
 *   starts, and the logout is sent only after the calls already on the wire have settled, so the
 *   logout is the session's last call and no re-logged-in session is left behind.
 * - A fault that mentions the session (expired or unknown key) logs in again once and retries.
 * - Dates: every documented form (dateTime.iso8601 without zone, ISO, `yyyy-MM-dd HH:mm:ss`, short
 *   dates) is accepted for every date field and normalised (`dates.ts`).
 * - Per-call timeout (`UYUNI_TIMEOUT_SECONDS`), TLS verification switch (`UYUNI_VERIFY_SSL`),
 *   bounded concurrency (`UYUNI_SYNC_WORKERS`), keep-alive sockets.
 * - Retry with jittered exponential backoff on transient failures only (connection reset/refused,
 *   timeouts, HTTP errors); a fault (-208 "No such system", …) is never retried.
 * - Replies are validated at the boundary: a malformed reply is an error naming the method and the
 *   field, never a crash.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import https from 'node:https';
import xmlrpc from 'xmlrpc';
import { UyuniReplyError } from './schemas.ts';
import { SessionKey, UyuniSession } from './session.ts';
import { backoffDelay } from '../../transient.ts';

export * from './schemas.ts';
export { UyuniSession } from './session.ts';

export interface UyuniConfig {
  url: string;
  user: string;
  password: string;
  verifySsl: boolean;
  timeoutMs: number;
  syncWorkers: number;
}

/** An XML-RPC fault answered by UYUNI (a definite answer: never retried). */
export class UyuniFault extends Error {
  readonly faultCode: number;
  constructor(method: string, code: number, faultString: string) {
    super(`UYUNI ${method}: fault ${code}: ${faultString}`);
    this.name = 'UyuniFault';
    this.faultCode = code;
  }
}

/** UYUNI unreachable or not answering: worth retrying later. */
export class UyuniUnavailable extends Error {
  readonly transient = true;
  /**
   * Whether UYUNI may have received (and carried out) the request: true after a timeout or a
   * connection cut mid-call; false when no connection was ever made (refused, no route, no name).
   */
  readonly maybeDelivered: boolean;
  constructor(message: string, options?: ErrorOptions & { maybeDelivered?: boolean }) {
    super(message, options);
    this.name = 'UyuniUnavailable';
    this.maybeDelivered = options?.maybeDelivered ?? true;
  }
}

/**
 * A scheduling call (apply errata, reboot, package install, promote) whose answer was lost after
 * it may have reached UYUNI. It is never re-sent blindly — the action may exist — so the caller
 * (the effect runner's reconcile) looks the action up for that system and advisory first.
 */
export class UyuniOutcomeUnknown extends UyuniUnavailable {
  constructor(method: string, cause: UyuniUnavailable) {
    super(
      `${cause.message}; UYUNI may have carried ${method} out, so it is not re-sent: the action is looked up before scheduling again`,
      { cause, maybeDelivered: true },
    );
    this.name = 'UyuniOutcomeUnknown';
  }
}

/** Calls that create something in UYUNI: never retried once they may have been delivered. */
export const UYUNI_WRITE_METHODS: ReadonlySet<string> = new Set([
  'system.scheduleApplyErrata',
  'system.scheduleReboot',
  'system.schedulePackageInstall',
  'contentmanagement.promoteProject',
]);
/** Connection errors that prove the request never left: safe to retry even for a write. */
const NOT_DELIVERED_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

/**
 * A call made on a session whose `withSession` has ended (a failed sync's remaining workers, the
 * engine's session at shutdown): never sent, never retried; transient for callers (try later).
 */
export class UyuniSessionClosed extends UyuniUnavailable {
  constructor(method: string) {
    super(`UYUNI ${method}: not sent, the session's cycle has ended`);
    this.name = 'UyuniSessionClosed';
  }
}

/** Transient error codes (connection level), as a table next to the retry helper. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/** A small semaphore: at most `n` calls in flight. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly n: number;
  constructor(n: number) {
    this.n = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export interface CallStats {
  calls: Record<string, number>;
  logins: number;
  logouts: number;
  relogins: number;
  retries: number;
}

export class UyuniClient {
  private readonly client: xmlrpc.Client;
  private readonly limiter: Limiter;
  private readonly cfg: UyuniConfig;
  readonly stats: CallStats = { calls: {}, logins: 0, logouts: 0, relogins: 0, retries: 0 };

  constructor(cfg: UyuniConfig) {
    this.cfg = cfg;
    const u = new URL(`${cfg.url.replace(/\/+$/, '')}/rpc/api`);
    const secure = u.protocol === 'https:';
    const agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: cfg.syncWorkers, rejectUnauthorized: cfg.verifySsl })
      : new http.Agent({ keepAlive: true, maxSockets: cfg.syncWorkers });
    // agent and rejectUnauthorized go through to http(s).request (not in the package's typings).
    const opts = {
      host: u.hostname,
      port: Number(u.port || (secure ? 443 : 80)),
      path: u.pathname,
      agent,
      rejectUnauthorized: cfg.verifySsl,
    } as Parameters<typeof xmlrpc.createClient>[0];
    this.client = secure ? xmlrpc.createSecureClient(opts) : xmlrpc.createClient(opts);
    this.limiter = new Limiter(cfg.syncWorkers);
  }

  /** One XML-RPC call: timeout, error classification; no session handling. */
  private rawCall(method: string, params: unknown[]): Promise<unknown> {
    this.stats.calls[method] = (this.stats.calls[method] ?? 0) + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new UyuniUnavailable(`UYUNI ${method}: no answer within ${this.cfg.timeoutMs} ms`)),
        this.cfg.timeoutMs,
      );
      this.client.methodCall(method, params, (err: unknown, value: unknown) => {
        clearTimeout(timer);
        if (!err) return resolve(value);
        const e = err as Error & { faultCode?: number; faultString?: string; code?: string };
        if (typeof e.faultCode === 'number') return reject(new UyuniFault(method, e.faultCode, e.faultString ?? ''));
        if (e.code !== undefined && TRANSIENT_CODES.has(e.code)) {
          return reject(
            new UyuniUnavailable(`UYUNI ${method}: ${e.code}`, {
              cause: err,
              maybeDelivered: !NOT_DELIVERED_CODES.has(e.code),
            }),
          );
        }
        // Anything else is a reply we could not read (not XML-RPC, cut short, an HTTP error page):
        // a definite, wrong answer — retrying would not make it readable.
        reject(new Error(`UYUNI ${method}: unreadable reply (${e.message})`, { cause: err }));
      });
    });
  }

  /**
   * Retry transient failures with jittered exponential backoff; faults and bad replies fail at
   * once. A write (`UYUNI_WRITE_METHODS`) is retried only when it provably never left; once it may
   * have been delivered, it fails with `UyuniOutcomeUnknown` instead of being sent again.
   */
  private async withRetry<T>(fn: () => Promise<T>, attempts = 3, write?: string): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (raw) {
        if (
          write !== undefined &&
          raw instanceof UyuniUnavailable &&
          !(raw instanceof UyuniSessionClosed) &&
          raw.maybeDelivered
        ) {
          throw new UyuniOutcomeUnknown(write, raw);
        }
        if (!(raw instanceof UyuniUnavailable) || raw instanceof UyuniSessionClosed || i + 1 >= attempts) throw raw;
        this.stats.retries++;
        await new Promise((r) => setTimeout(r, backoffDelay(i + 1, { baseMs: 200, maxMs: 5000 })));
      }
    }
  }

  private async login(): Promise<string> {
    const key = await this.withRetry(() => this.rawCall('auth.login', [this.cfg.user, this.cfg.password]));
    if (typeof key !== 'string' || !/^[1-9][0-9]*x[a-f0-9]{64}$/.test(key))
      throw new UyuniReplyError('auth.login', [
        { code: 'custom', path: [], message: 'not a session key', input: undefined } as never,
      ]);
    this.stats.logins++;
    return key;
  }

  /** The session of the `withSession` whose callback we are in (nested calls reuse it). */
  private readonly current = new AsyncLocalStorage<SessionKey>();

  private async logout(core: SessionKey): Promise<void> {
    core.ended = true;
    await this.rawCall('auth.logout', [core.key]).then(
      () => void this.stats.logouts++,
      () => undefined, // an expired session cannot be logged out; nothing to do
    );
  }

  /**
   * Run `fn` with one session (login before, logout after, even on failure). Inside another
   * `withSession` it reuses that session (no login, no logout). Either way, when `fn` settles the
   * session handle given to it is closed: its remaining calls are not sent (`UyuniSessionClosed`).
   * @example
   * const groups = await uyuni.withSession((s) => s.listAllGroups());
   */
  async withSession<T>(fn: (s: UyuniSession) => Promise<T>): Promise<T> {
    const outer = this.current.getStore();
    if (outer && !outer.ended) {
      const handle = new UyuniSession(this, outer);
      try {
        return await fn(handle);
      } finally {
        await handle.close();
      }
    }
    const core = new SessionKey(await this.login());
    const handle = new UyuniSession(this, core);
    try {
      return await this.current.run(core, () => fn(handle));
    } finally {
      await handle.close();
      await core.idle(); // nested handles' calls already on the wire
      await this.logout(core);
    }
  }

  private sharedSession: Promise<UyuniSession> | undefined;
  /**
   * A long-lived session for the test engine's calls (logged in once, re-logged in on expiry by
   * `sessionCall`): a test or a wave makes a handful of calls, not one login each.
   */
  async shared(): Promise<UyuniSession> {
    this.sharedSession ??= this.login()
      .then((k) => new UyuniSession(this, new SessionKey(k)))
      .catch((raw) => {
        this.sharedSession = undefined;
        throw raw;
      });
    return this.sharedSession;
  }
  /** Log the shared session out (shutdown). */
  async closeShared(): Promise<void> {
    const s = await this.sharedSession?.catch(() => undefined);
    this.sharedSession = undefined;
    if (s) {
      await s.close();
      await this.logout(s.core);
    }
  }

  /** @internal used by UyuniSession */
  async sessionCall(session: UyuniSession, method: string, params: unknown[]): Promise<unknown> {
    const send = () => {
      if (!session.open) throw new UyuniSessionClosed(method); // checked again before every attempt and retry
      return this.rawCall(method, [session.core.key, ...params]);
    };
    const write = UYUNI_WRITE_METHODS.has(method) ? method : undefined;
    return session.track(
      this.limiter.run(async () => {
        try {
          return await this.withRetry(send, 3, write);
        } catch (raw) {
          // Expired or unknown session: log in again once (shared by every worker) and retry —
          // unless the cycle has ended meanwhile (then the fault is the logout's doing).
          if (raw instanceof UyuniFault && /session/i.test(raw.message) && session.open) {
            await session.core.relogin(() => this.login());
            this.stats.relogins++;
            return this.withRetry(send, 3, write);
          }
          throw raw;
        }
      }),
    );
  }
}
