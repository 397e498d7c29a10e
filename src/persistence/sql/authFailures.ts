/**
 * Queries of the auth_failures family: failed authentications counted per key (a client address,
 * a token's display prefix) in a sliding window, shared by the replicas (`http/rateLimit.ts`).
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/** The counters `auth_failures` keeps (its CHECK names the same). */
export type FailureScope = 'ui_ip' | 'ui_token' | 'api_ip';

/** The limit: at most `max` failures in any `windowMs`. */
interface Limit {
  max: number;
  windowMs: number;
}

/**
 * How long `key` is refused now, by the database clock: until the max-th newest failure of the
 * window ages out; null while fewer than `max` failures are in it.
 * @example await refusedForMs(db, 'api_ip', '192.0.2.7', { max: 50, windowMs: 900_000 }) // 812000 | null
 */
export function refusedForMs(db: Pick<Db, 'maybeOneFirst'>, scope: FailureScope, key: string, l: Limit) {
  return db.maybeOneFirst(sql.type(z.object({ wait_ms: z.number() }))`
    SELECT GREATEST(1, (extract(epoch FROM at + make_interval(secs => ${l.windowMs / 1000}) - clock_timestamp()) * 1000)::float8) AS wait_ms
    FROM auth_failures
    WHERE scope = ${scope} AND key = ${key}
      AND at > clock_timestamp() - make_interval(secs => ${l.windowMs / 1000})
    ORDER BY at DESC OFFSET ${l.max - 1} LIMIT 1`);
}

/**
 * Record one failure of `key` and answer `refusedForMs` with it counted (one transaction).
 * @example await recordAuthFailure(db, 'ui_token', 'spm_AbCdEfGh', { max: 5, windowMs: 900_000 })
 */
export function recordAuthFailure(db: Db, scope: FailureScope, key: string, l: Limit) {
  return db.transaction(async (tx) => {
    await tx.query(sql.unsafe`INSERT INTO auth_failures (scope, key) VALUES (${scope}, ${key})`);
    return refusedForMs(tx, scope, key, l);
  });
}

/** Forget `key`'s failures (it signed in). @example await clearAuthFailures(db, 'ui_token', 'spm_AbCdEfGh') */
export function clearAuthFailures(db: Db, scope: FailureScope, key: string) {
  return db.query(sql.unsafe`DELETE FROM auth_failures WHERE scope = ${scope} AND key = ${key}`);
}

/** Drop the scope's rows older than the window. @example await pruneAuthFailures(db, 'api_ip', 900_000) */
export function pruneAuthFailures(db: Db, scope: FailureScope, windowMs: number) {
  return db.query(sql.unsafe`
    DELETE FROM auth_failures WHERE scope = ${scope} AND at <= clock_timestamp() - make_interval(secs => ${windowMs / 1000})`);
}
