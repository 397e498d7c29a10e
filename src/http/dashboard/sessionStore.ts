/**
 * Where dashboard sessions live: the `ui_sessions` table (migration 0008), so every replica knows
 * every session and a restart signs nobody out. The browser's cookie holds a random 256-bit id; the
 * table holds the SHA-256 of it and the API token sealed with AES-256-GCM under a key derived from
 * the id (HKDF, another label than the hash), so a row without the cookie opens nothing — a
 * database dump yields no session and no token, and no key is configured or shared.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { Db } from '../../persistence/db.ts';
import {
  deleteDeadSessions,
  deleteSession,
  findLiveSession,
  insertSession,
  touchSession,
} from '../../persistence/sql/sessions.ts';
import { hashToken } from '../../services/tokens.ts';

/** One signed-in browser, as the store gives it back. */
export interface SessionRecord {
  token: string;
  createdAt: number;
  lastSeenAt: number;
}

/** Dashboard sessions (`now` is passed in: the caller's clock decides the limits). */
export interface SessionStore {
  /** A new session for `token`'s holder; its id (for the cookie), or null if the token is not live. */
  create(token: string, now: number): Promise<string | null>;
  /** The live session with this id (idle and absolute limits checked), or null. */
  get(id: string, now: number): Promise<SessionRecord | null>;
  /** A page view (written at most once a minute). */
  touch(id: string, now: number): Promise<void>;
  delete(id: string): Promise<void>;
}

const idHash = (id: string) => createHash('sha256').update(`spm-ui-session-id\0${id}`).digest('hex');
const keyOf = (id: string) => Buffer.from(hkdfSync('sha256', id, 'spm-ui-session', 'token key', 32));

function seal(id: string, token: string): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', keyOf(id), iv);
  const body = Buffer.concat([c.update(token, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]);
}

function unseal(id: string, sealed: Buffer): string | null {
  try {
    const d = createDecipheriv('aes-256-gcm', keyOf(id), sealed.subarray(0, 12));
    d.setAuthTag(sealed.subarray(12, 28));
    return Buffer.concat([d.update(sealed.subarray(28)), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}

/**
 * Sessions in PostgreSQL, shared by the replicas.
 * @example
 * const store = databaseSessionStore(db, { idleMs: 30 * 60_000, maxMs: 12 * 3_600_000 });
 */
export function databaseSessionStore(db: Db, o: { idleMs: number; maxMs: number }): SessionStore {
  return {
    async create(token, now) {
      const id = randomBytes(32).toString('base64url');
      // Sign-ins sweep the dead sessions: the table holds only live ones, without a loop of its own.
      await deleteDeadSessions(db, now - o.idleMs, now - o.maxMs);
      const ok = await insertSession(db, {
        idHash: idHash(id),
        tokenHash: hashToken(token),
        sealed: seal(id, token),
        now,
      });
      return ok ? id : null;
    },
    async get(id, now) {
      const row = await findLiveSession(db, idHash(id), now - o.idleMs, now - o.maxMs);
      if (row === null) return null;
      const token = unseal(id, row.token_sealed);
      return token === null ? null : { token, createdAt: row.created_at, lastSeenAt: row.last_seen_at };
    },
    touch: (id, now) => touchSession(db, idHash(id), now),
    delete: (id) => deleteSession(db, idHash(id)),
  };
}
