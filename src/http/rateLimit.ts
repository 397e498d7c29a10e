/**
 * Failed-attempt limiting (dashboard sign-in, API bearer tokens): at most `max` failures per key
 * in any sliding `windowMs`; past that the key is refused (429 with Retry-After) until its oldest
 * failure in the window ages out. A success clears the key.
 *
 * `FailureLimiter` counts in memory, per process. `SharedFailureLimiter` counts in PostgreSQL
 * (`auth_failures`), shared by the replicas and kept across restarts: each failure is one row, and
 * the count of the window is read back with it, so a replica learns of a key's failures elsewhere
 * at the key's first failure it sees (an attacker spreading over N replicas gets `max` + N − 1
 * tries, not N × `max`). The refusal itself is decided locally (no query per request); when the
 * database cannot be written, the in-memory count still limits this replica.
 */
import type { Db } from '../persistence/db.ts';
import {
  clearAuthFailures,
  pruneAuthFailures,
  recordAuthFailure,
  refusedForMs,
  type FailureScope,
} from '../persistence/sql/authFailures.ts';

export interface FailureLimiterOptions {
  max: number;
  windowMs: number;
  maxKeys?: number;
  now?: () => number;
}

/**
 * Sliding-window failure counter per key.
 * @example
 * const perIp = new FailureLimiter({ max: 20, windowMs: 900_000 });
 * if (perIp.retryAfterMs(ip) > 0) return tooMany(); … perIp.fail(ip);
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly o: Required<FailureLimiterOptions>;

  constructor(o: FailureLimiterOptions) {
    this.o = { maxKeys: 50_000, now: Date.now, ...o };
  }

  private recent(key: string, now: number): number[] {
    const list = this.failures.get(key);
    if (!list) return [];
    const from = now - this.o.windowMs;
    let i = 0;
    while (i < list.length && list[i]! <= from) i++;
    if (i > 0) list.splice(0, i);
    if (list.length === 0) this.failures.delete(key);
    return list;
  }

  /** 0 when `key` may try now, else how long until it may. */
  retryAfterMs(key: string): number {
    const now = this.o.now();
    const list = this.recent(key, now);
    if (list.length < this.o.max) return 0;
    return Math.max(1, list[list.length - this.o.max]! + this.o.windowMs - now);
  }

  /** Count a failure of `key`. */
  fail(key: string): void {
    const now = this.o.now();
    const list = this.recent(key, now);
    if (list.length === 0) {
      if (this.failures.size >= this.o.maxKeys) this.evict(now);
      this.failures.set(key, list);
    }
    list.push(now);
    // Only the newest `max` matter for the decision.
    if (list.length > this.o.max) list.splice(0, list.length - this.o.max);
  }

  /** Forget `key`'s failures (it signed in). */
  reset(key: string): void {
    this.failures.delete(key);
  }

  /** How many keys are tracked (for tests and metrics). */
  get size(): number {
    return this.failures.size;
  }

  private evict(now: number): void {
    for (const key of [...this.failures.keys()]) if (this.recent(key, now).length === 0) this.failures.delete(key);
    while (this.failures.size >= this.o.maxKeys) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }
}

/** What `auth_failures.key` holds of a key (its CHECK allows 200 characters). */
const stored = (key: string) => key.slice(0, 200);

/** Prune the scope's aged-out rows every this many failures recorded by a process. */
const PRUNE_EVERY = 64;
/** At most this many refused keys are remembered per process. */
const MAX_REFUSED_KEYS = 50_000;

/**
 * `FailureLimiter` shared through PostgreSQL: same answers, one row per failure.
 * @example
 * const perIp = new SharedFailureLimiter(db, 'api_ip', { max: 50, windowMs: 900_000 }, logger);
 * if (perIp.retryAfterMs(ip) > 0) return tooMany(); … await perIp.fail(ip);
 */
export class SharedFailureLimiter {
  private readonly local: FailureLimiter;
  /** Keys refused until (local monotonic ms), learned from the shared count at a failure. */
  private readonly until = new Map<string, number>();
  private recorded = 0;
  private readonly now: () => number;
  private readonly db: Db;
  private readonly scope: FailureScope;
  private readonly o: FailureLimiterOptions;
  private readonly onError: (message: string) => void;

  constructor(db: Db, scope: FailureScope, o: FailureLimiterOptions, onError: (message: string) => void = () => {}) {
    this.db = db;
    this.scope = scope;
    this.o = o;
    this.onError = onError;
    this.local = new FailureLimiter(o);
    this.now = o.now ?? (() => performance.now());
  }

  /** 0 when `key` may try now, else how long until it may (no query). */
  retryAfterMs(key: string): number {
    const until = this.until.get(key);
    const shared = until === undefined ? 0 : Math.max(0, until - this.now());
    if (until !== undefined && shared === 0) this.until.delete(key);
    return Math.max(shared, this.local.retryAfterMs(key));
  }

  /**
   * Count a failure of `key` on every replica; resolves with how long `key` is refused now (0: not
   * yet). Never rejects: a database that cannot be written leaves the in-memory count.
   */
  async fail(key: string): Promise<number> {
    this.local.fail(key);
    try {
      this.refuse(key, await recordAuthFailure(this.db, this.scope, stored(key), this.o));
      if (++this.recorded % PRUNE_EVERY === 0) await pruneAuthFailures(this.db, this.scope, this.o.windowMs);
    } catch (raw) {
      this.onError(
        `failed authentications cannot be counted in the database (${(raw as Error).message}): counting in memory`,
      );
    }
    return this.retryAfterMs(key);
  }

  /**
   * `retryAfterMs` after reading the shared count first (one query): for the rare paths that must
   * see the other replicas' failures before an attempt (dashboard sign-in). Never rejects.
   */
  async check(key: string): Promise<number> {
    try {
      this.refuse(key, await refusedForMs(this.db, this.scope, stored(key), this.o));
    } catch (raw) {
      this.onError(`failed authentications cannot be read from the database (${(raw as Error).message})`);
    }
    return this.retryAfterMs(key);
  }

  /** Remember that `key` is refused for `wait` ms (null: not refused), from the shared count. */
  private refuse(key: string, wait: number | null): void {
    if (wait === null) return;
    // Bounded like the in-memory counts: the refusals that ended go first, then the oldest.
    if (this.until.size >= MAX_REFUSED_KEYS && !this.until.has(key)) {
      const now = this.now();
      for (const [k, until] of this.until) if (until <= now) this.until.delete(k);
      while (this.until.size >= MAX_REFUSED_KEYS) this.until.delete(this.until.keys().next().value!);
    }
    this.until.set(key, this.now() + wait);
  }

  /** Forget `key`'s failures on every replica (it signed in). Never rejects. */
  async reset(key: string): Promise<void> {
    this.local.reset(key);
    this.until.delete(key);
    try {
      await clearAuthFailures(this.db, this.scope, stored(key));
    } catch (raw) {
      this.onError(`failed authentications cannot be cleared in the database (${(raw as Error).message})`);
    }
  }
}
