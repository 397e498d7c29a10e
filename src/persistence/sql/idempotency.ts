/** Idempotency keys: the first request claims the key; its answer is stored and replayed. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export const idemRow = z.object({
  request_hash: z.string(),
  status_code: z.number().nullable(),
  response: z.unknown().nullable(),
});

/**
 * A claim with no answer older than this was left by a request that died (a crash, a killed
 * replica): the same request may take it over. Longer than any request runs (a write retries for
 * a few seconds at most; HTTP handlers have no longer waits).
 */
export const STALE_IDEMPOTENCY_CLAIM_SECONDS = 120;

/**
 * Claim the key; returns null when this request won, else the existing row. A stale claim of the
 * same request (no answer after STALE_IDEMPOTENCY_CLAIM_SECONDS) is taken over, never another
 * request's.
 */
export async function claimIdempotencyKey(
  db: Db,
  k: { tokenId: number; key: string; method: string; path: string; requestHash: string },
) {
  const won = await db.maybeOne(sql.type(z.object({ key: z.string() }))`
    INSERT INTO idempotency_keys (token_id, key, method, path, request_hash) VALUES (${k.tokenId}, ${k.key}, ${k.method}, ${k.path}, ${k.requestHash})
    ON CONFLICT (token_id, key) DO UPDATE SET created_at = now()
      WHERE idempotency_keys.status_code IS NULL AND idempotency_keys.request_hash = excluded.request_hash
        AND idempotency_keys.created_at < now() - make_interval(secs => ${STALE_IDEMPOTENCY_CLAIM_SECONDS})
    RETURNING key`);
  if (won !== null) return null;
  return db.one(
    sql.type(
      idemRow,
    )`SELECT request_hash, status_code, response FROM idempotency_keys WHERE token_id = ${k.tokenId} AND key = ${k.key}`,
  );
}

export function storeIdempotentResponse(db: Db, tokenId: number, key: string, status: number, response: unknown) {
  return db.query(
    sql.unsafe`UPDATE idempotency_keys SET status_code = ${status}, response = ${sql.jsonb(response as never)} WHERE token_id = ${tokenId} AND key = ${key}`,
  );
}

/** A request that failed with 5xx releases its key so that a retry can run. */
export function releaseIdempotencyKey(db: Db, tokenId: number, key: string) {
  return db.query(
    sql.unsafe`DELETE FROM idempotency_keys WHERE token_id = ${tokenId} AND key = ${key} AND status_code IS NULL`,
  );
}
