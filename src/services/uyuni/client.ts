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
import { z } from 'zod';
import { uyuniDateInstant, uyuniDateText } from './dates.ts';

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

export class UyuniReplyError extends Error {
  constructor(method: string, issues: z.core.$ZodIssue[]) {
    super(
      `UYUNI ${method}: unexpected reply: ${issues
        .slice(0, 3)
        .map((i) => `${i.path.length ? `reply.${i.path.join('.')}` : 'reply'}: ${i.message}`)
        .join('; ')}`,
    );
    this.name = 'UyuniReplyError';
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

// --------------------------------------------------------------------------- reply schemas
// Timestamps (check-in, action times) as a Date; errata dates as the server's wall-clock text.
const dateish = uyuniDateInstant;
const dateText = uyuniDateText;
export const groupSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  description: z.string().optional(),
  system_count: z.number().int().optional(),
  org_id: z.number().int().optional(),
});
export const systemOverviewSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  last_checkin: dateish.optional(),
});
export const errataOverviewSchema = z.object({
  id: z.number().int(),
  advisory_name: z.string().min(1),
  advisory_type: z.enum(['Security Advisory', 'Bug Fix Advisory', 'Product Enhancement Advisory']),
  advisory_synopsis: z.string().optional(),
  // Spacewalk-lineage servers send none of advisory_status, issue_date, update_date (only `date`, a dateTime).
  advisory_status: z.string().optional(),
  issue_date: dateText.optional(),
  update_date: dateText.optional(),
  date: dateText.optional(),
  last_modified_date: dateText.optional(),
  reboot: z.boolean().optional(),
  reload: z.boolean().optional(),
});
export type ErrataOverview = z.infer<typeof errataOverviewSchema>;
export const packageSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  version: z.string().optional(),
  release: z.string().optional(),
  epoch: z.string().optional(),
  arch_label: z.string().optional(),
  size: z.union([z.number(), z.string()]).optional(),
});
export const errataDetailsSchema = z.object({
  id: z.number().int(),
  synopsis: z.string().optional(),
  description: z.string().optional(),
  type: z.string().optional(),
  issue_date: dateText.optional(),
  update_date: dateText.optional(),
  last_modified_date: dateText.optional(),
  reboot_suggested: z.boolean().optional(),
});

export const actionedSystemSchema = z.object({
  server_id: z.number().int(),
  server_name: z.string().optional(),
  timestamp: dateish.optional(),
  message: z.string().optional(),
});
export type ActionedSystem = z.infer<typeof actionedSystemSchema>;
export const scheduledActionSchema = z.object({
  id: z.number().int(),
  name: z.string().optional(),
  type: z.string().optional(),
  earliest: dateish.optional(),
});
export const installedPackageSchema = z.object({
  name: z.string(),
  version: z.string(),
  release: z.string(),
  epoch: z.string(),
  arch: z.string().optional(),
});
export const clmEnvironmentSchema = z.object({
  id: z.number().int(),
  label: z.string(),
  name: z.string(),
  version: z.number().int(),
  status: z.string(),
  previousEnvironmentLabel: z.string().optional(),
  nextEnvironmentLabel: z.string().optional(),
});
export const systemEventSchema = z.object({
  id: z.number().int(),
  action_type: z.string().optional(),
  name: z.string().optional(),
  completed_date: dateish.optional(),
  pickup_date: dateish.optional(),
  result_msg: z.string().optional(),
});

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
        await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** i) * (0.5 + Math.random())));
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

/** A logged-in session key, shared by the handles of one cycle; re-logged in once on expiry. */
class SessionKey {
  key: string;
  /** Logged out (or being): nothing may be sent with it any more, and no re-login. */
  ended = false;
  private relogging: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  constructor(key: string) {
    this.key = key;
  }

  /** Re-login once for all workers that hit the expired key at the same time. */
  async relogin(login: () => Promise<string>): Promise<void> {
    const stale = this.key;
    this.relogging ??= login()
      .then((k) => {
        this.key = k;
      })
      .finally(() => {
        this.relogging = undefined;
      });
    if (this.key === stale) await this.relogging;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }

  /** Every call made with this key has settled. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }
}

export class UyuniSession {
  /** @internal */
  readonly core: SessionKey;
  private closed = false;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly client: UyuniClient;
  constructor(client: UyuniClient, core: SessionKey) {
    this.client = client;
    this.core = core;
  }

  get key(): string {
    return this.core.key;
  }

  /** Calls may still be sent: neither this handle's cycle nor the key has ended. */
  get open(): boolean {
    return !this.closed && !this.core.ended;
  }

  /** @internal */
  track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return this.core.track(p);
  }

  /** Refuse further calls and wait for the ones already made to settle (each is bounded by the call timeout). */
  async close(): Promise<void> {
    this.closed = true;
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  private async typed<T extends z.ZodType>(method: string, params: unknown[], schema: T): Promise<z.infer<T>> {
    const reply = await this.client.sessionCall(this, method, params);
    const parsed = schema.safeParse(reply);
    if (!parsed.success) throw new UyuniReplyError(method, parsed.error.issues);
    return parsed.data;
  }

  listAllGroups() {
    return this.typed('systemgroup.listAllGroups', [], z.array(groupSchema));
  }
  listSystemsMinimal(group: string) {
    return this.typed('systemgroup.listSystemsMinimal', [group], z.array(systemOverviewSchema));
  }
  getRelevantErrata(systemId: number) {
    return this.typed('system.getRelevantErrata', [systemId], z.array(errataOverviewSchema));
  }
  listCves(advisory: string) {
    return this.typed('errata.listCves', [advisory], z.array(z.string()));
  }
  listPackages(advisory: string) {
    return this.typed('errata.listPackages', [advisory], z.array(packageSchema));
  }
  getDetails(advisory: string) {
    return this.typed('errata.getDetails', [advisory], errataDetailsSchema);
  }

  /**
   * Apply errata to systems (overload 4: sids, errataIds, earliest, allowModules). Returns action
   * ids: not one per system or errata — resolve systems per action with `actionSystems`.
   */
  scheduleApplyErrata(
    systemIds: number[],
    errataIds: number[],
    opts: { earliest?: Date; allowModules?: boolean } = {},
  ) {
    return this.typed(
      'system.scheduleApplyErrata',
      [systemIds, errataIds, opts.earliest ?? new Date(), opts.allowModules ?? false],
      z.array(z.number().int()),
    );
  }
  scheduleReboot(systemId: number, earliest: Date = new Date()) {
    return this.typed('system.scheduleReboot', [systemId, earliest], z.number().int());
  }
  /** Where each system of an action stands (systems move from in progress to completed or failed). */
  async actionSystems(
    actionId: number,
  ): Promise<{ inProgress: ActionedSystem[]; completed: ActionedSystem[]; failed: ActionedSystem[] }> {
    const list = z.array(actionedSystemSchema);
    const [inProgress, completed, failed] = await Promise.all([
      this.typed('schedule.listInProgressSystems', [actionId], list),
      this.typed('schedule.listCompletedSystems', [actionId], list),
      this.typed('schedule.listFailedSystems', [actionId], list),
    ]);
    return { inProgress, completed, failed };
  }
  listInProgressActions() {
    return this.typed('schedule.listInProgressActions', [], z.array(scheduledActionSchema));
  }
  /** Fails (UYUNI: UnsupportedOperationException) when a system already picked the action up. */
  cancelActions(actionIds: number[]) {
    return this.typed('schedule.cancelActions', [actionIds], z.number().int());
  }
  listSystemEvents(systemId: number) {
    return this.typed('system.listSystemEvents', [systemId], z.array(systemEventSchema));
  }
  /** Install packages by id (a lower build is a downgrade); one action per system. */
  schedulePackageInstall(systemIds: number[], packageIds: number[], earliest: Date = new Date()) {
    return this.typed('system.schedulePackageInstall', [systemIds, packageIds, earliest], z.array(z.number().int()));
  }
  listInstalledPackages(systemId: number) {
    return this.typed('system.listPackages', [systemId], z.array(installedPackageSchema));
  }
  listProjectEnvironments(projectLabel: string) {
    return this.typed('contentmanagement.listProjectEnvironments', [projectLabel], z.array(clmEnvironmentSchema));
  }
  lookupEnvironment(projectLabel: string, envLabel: string) {
    return this.typed('contentmanagement.lookupEnvironment', [projectLabel, envLabel], clmEnvironmentSchema);
  }
  /** Copies `envLabel` into its successor (to fill PROD, promote TEST). Asynchronous: poll lookupEnvironment. */
  promoteProject(projectLabel: string, envLabel: string) {
    return this.typed('contentmanagement.promoteProject', [projectLabel, envLabel], z.number().int());
  }
}
