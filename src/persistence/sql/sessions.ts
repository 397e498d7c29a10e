/** Queries of the `ui_sessions` family (migration 0008): dashboard sessions shared by every replica. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const sessionRow = z.object({ token_sealed: z.instanceof(Buffer), created_at: z.number(), last_seen_at: z.number() });
export type SessionRow = z.infer<typeof sessionRow>;

const at = (ms: number) => sql.fragment`to_timestamp(${ms / 1000}::double precision)`;

/**
 * Store a session for the token with this hash (its id is looked up); false when no live token has it.
 * @example await insertSession(db, { idHash, tokenHash, sealed, now: Date.now() });
 */
export async function insertSession(
  db: Db,
  s: { idHash: string; tokenHash: string; sealed: Buffer; now: number },
): Promise<boolean> {
  const rows = await db.anyFirst(sql.type(z.object({ id_hash: z.string() }))`
    INSERT INTO ui_sessions (id_hash, token_id, token_sealed, created_at, last_seen_at)
    SELECT ${s.idHash}, id, ${sql.binary(s.sealed)}, ${at(s.now)}, ${at(s.now)} FROM api_tokens
    WHERE token_hash = ${s.tokenHash} AND revoked_at IS NULL
    RETURNING id_hash`);
  return rows.length > 0;
}

/**
 * The session with this id hash if it is live: seen after `idleSince` and created after `createdSince`.
 * @example const row = await findLiveSession(db, idHash, now - idleMs, now - maxMs);
 */
export function findLiveSession(db: Db, idHash: string, idleSince: number, createdSince: number) {
  return db.maybeOne(sql.type(sessionRow)`
    SELECT token_sealed, created_at, last_seen_at FROM ui_sessions
    WHERE id_hash = ${idHash} AND last_seen_at > ${at(idleSince)} AND created_at > ${at(createdSince)}`);
}

/**
 * Record a page view, at most one write a minute per session (`olderThan` = now − 1 min).
 * @example await touchSession(db, idHash, Date.now());
 */
export async function touchSession(db: Db, idHash: string, now: number): Promise<void> {
  await db.query(sql.unsafe`
    UPDATE ui_sessions SET last_seen_at = ${at(now)} WHERE id_hash = ${idHash} AND last_seen_at < ${at(now - 60_000)}`);
}

/** End one session. @example await deleteSession(db, idHash); */
export async function deleteSession(db: Db, idHash: string): Promise<void> {
  await db.query(sql.unsafe`DELETE FROM ui_sessions WHERE id_hash = ${idHash}`);
}

/**
 * Delete the sessions past their idle or absolute limit.
 * @returns how many
 * @example await deleteDeadSessions(db, now - idleMs, now - maxMs);
 */
export async function deleteDeadSessions(db: Db, idleSince: number, createdSince: number): Promise<number> {
  const r = await db.query(
    sql.unsafe`DELETE FROM ui_sessions WHERE last_seen_at <= ${at(idleSince)} OR created_at <= ${at(createdSince)}`,
  );
  return r.rowCount;
}
