/**
 * Failed-attempt limiting for sign-in: at most `max` failures per key in any sliding `windowMs`;
 * past that the key is refused (429 with Retry-After) until its oldest failure in the window ages
 * out. A success clears the key.
 *
 * In memory, per process: right for one replica. With several replicas each counts its own
 * failures, so an attacker spreading attempts over N replicas gets N times the budget (a shared
 * PostgreSQL store would close that; not built). A restart forgets the counts. The map holds at
 * most `maxKeys` keys: when full, keys whose failures have all aged out go first, then the oldest.
 */

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
