/** Queries of the `api_tokens` family. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';
import { ROLES, type Role } from '../../services/tokens.ts';

export const tokenRow = z.object({
  id: z.number(),
  name: z.string(),
  prefix: z.string(),
  role: z.enum(ROLES),
  created_by: z.string(),
  created_at: z.number(),
  expires_at: z.number().nullable(),
  revoked_at: z.number().nullable(),
  last_used_at: z.number().nullable(),
});
export type TokenRow = z.infer<typeof tokenRow>;

export function insertToken(db: Db, t: { name: string; prefix: string; hash: string; role: Role; createdBy: string; expiresInDays: number | null }) {
  return db.one(sql.type(tokenRow)`
    INSERT INTO api_tokens (name, prefix, token_hash, role, created_by, expires_at)
    VALUES (${t.name}, ${t.prefix}, ${t.hash}, ${t.role}, ${t.createdBy},
            CASE WHEN ${t.expiresInDays}::int IS NULL THEN NULL ELSE now() + make_interval(days => ${t.expiresInDays}::int) END)
    RETURNING id, name, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at`);
}

export function listTokens(db: Db) {
  return db.any(sql.type(tokenRow)`
    SELECT id, name, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at FROM api_tokens ORDER BY id`);
}

/** Revoke by id or display prefix; returns the revoked rows (none if already revoked or unknown). */
export function revokeToken(db: Db, idOrPrefix: string) {
  const asId = /^\d+$/.test(idOrPrefix) ? Number(idOrPrefix) : -1;
  return db.any(sql.type(tokenRow)`
    UPDATE api_tokens SET revoked_at = now()
    WHERE (id = ${asId} OR prefix = ${idOrPrefix}) AND revoked_at IS NULL
    RETURNING id, name, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at`);
}

/** The live token with this hash (not revoked, not expired), touching `last_used_at` at most once a minute. */
export function findLiveToken(db: Db, hash: string) {
  return db.maybeOne(sql.type(tokenRow)`
    UPDATE api_tokens SET last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < now() - interval '1 minute' THEN now() ELSE last_used_at END
    WHERE token_hash = ${hash} AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
    RETURNING id, name, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at`);
}
