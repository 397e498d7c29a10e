/** Queries of the `api_tokens` family. */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';
import { noteTokenUse } from './tokenUse.ts';
import { ROLES, type Role } from '../../services/tokens.ts';

export const tokenRow = z.object({
  id: z.number(),
  name: z.string(),
  /** The identity the token acts as (several tokens may share one; migration 0007). */
  person: z.string(),
  prefix: z.string(),
  role: z.enum(ROLES),
  created_by: z.string(),
  created_at: z.number(),
  expires_at: z.number().nullable(),
  revoked_at: z.number().nullable(),
  last_used_at: z.number().nullable(),
});
export type TokenRow = z.infer<typeof tokenRow>;

/**
 * Store a new token (its hash). `person` absent: the token name made unique (a trigger of 0007).
 * @example await insertToken(db, { name: 'alice-laptop', person: 'alice', prefix, hash, role: 'approver', createdBy: 'cli:root', expiresInDays: 90 });
 */
export function insertToken(
  db: Db | DatabaseTransactionConnection,
  t: {
    name: string;
    person?: string | null;
    prefix: string;
    hash: string;
    role: Role;
    createdBy: string;
    expiresInDays: number | null;
  },
) {
  return db.one(sql.type(tokenRow)`
    INSERT INTO api_tokens (name, person, prefix, token_hash, role, created_by, expires_at)
    VALUES (${t.name}, ${t.person ?? null}, ${t.prefix}, ${t.hash}, ${t.role}, ${t.createdBy},
            CASE WHEN ${t.expiresInDays}::int IS NULL THEN NULL ELSE now() + make_interval(days => ${t.expiresInDays}::int) END)
    RETURNING id, name, person, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at`);
}

export function listTokens(db: Db) {
  return db.any(sql.type(tokenRow)`
    SELECT id, name, person, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at FROM api_tokens ORDER BY id`);
}

/** Revoke by id or display prefix; returns the revoked rows (none if already revoked or unknown). */
export function revokeToken(db: Db | DatabaseTransactionConnection, idOrPrefix: string) {
  const asId = /^\d+$/.test(idOrPrefix) ? Number(idOrPrefix) : -1;
  return db.any(sql.type(tokenRow)`
    UPDATE api_tokens SET revoked_at = now()
    WHERE (id = ${asId} OR prefix = ${idOrPrefix}) AND revoked_at IS NULL
    RETURNING id, name, person, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at`);
}

/**
 * The live token with this hash (not revoked, not expired). A read only: the use is remembered in
 * memory and written at most once a minute per token (./tokenUse.ts), not UPDATEd per request.
 * @example
 * const row = await findLiveToken(db, hashToken(bearer));
 */
export async function findLiveToken(db: Db, hash: string) {
  const row = await db.maybeOne(sql.type(tokenRow)`
    SELECT id, name, person, prefix, role, created_by, created_at, expires_at, revoked_at, last_used_at FROM api_tokens
    WHERE token_hash = ${hash} AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`);
  if (row !== null) noteTokenUse(db, row.id);
  return row;
}
