/**
 * When each API token was last used, without a write per request: `noteTokenUse` keeps the latest
 * use of each token in memory and one UPDATE per flush writes them all, at most once a minute (so
 * at most one row version per token per minute, and none on the request's path). `last_used_at`
 * is therefore up to a minute behind; a crash loses the last minute of uses (`flushTokenUse` at a
 * graceful stop keeps it). Several replicas each flush their own uses (`GREATEST` keeps the newest).
 */
import { sql } from 'slonik';
import type { Db } from '../db.ts';

/** How often the uses are written. */
export const TOKEN_USE_FLUSH_MS = 60_000;

interface Pending {
  uses: Map<number, number>;
  timer: NodeJS.Timeout | null;
}

const pendingByDb = new WeakMap<Db, Pending>();

/**
 * Remember that token `id` was used now; written within `TOKEN_USE_FLUSH_MS`.
 * @example
 * noteTokenUse(db, row.id);
 */
export function noteTokenUse(db: Db, id: number, at = Date.now()): void {
  let p = pendingByDb.get(db);
  if (!p) {
    p = { uses: new Map(), timer: null };
    pendingByDb.set(db, p);
  }
  p.uses.set(id, Math.max(at, p.uses.get(id) ?? 0));
  if (p.timer === null) {
    p.timer = setTimeout(() => void flushTokenUse(db).catch(() => undefined), TOKEN_USE_FLUSH_MS);
    p.timer.unref();
  }
}

/**
 * Write the remembered uses now (one UPDATE for every token used since the last flush).
 * @returns how many tokens were written
 * @example
 * await flushTokenUse(db); // at a graceful stop, before the pool closes
 */
export async function flushTokenUse(db: Db): Promise<number> {
  const p = pendingByDb.get(db);
  if (!p) return 0;
  if (p.timer !== null) clearTimeout(p.timer);
  p.timer = null;
  if (p.uses.size === 0) return 0;
  const ids = [...p.uses.keys()];
  const ats = ids.map((id) => p.uses.get(id)! / 1000);
  p.uses.clear();
  await db.query(sql.unsafe`
    UPDATE api_tokens t SET last_used_at = GREATEST(COALESCE(t.last_used_at, '-infinity'::timestamptz), to_timestamp(u.at))
    FROM unnest(${sql.array(ids, 'int8')}, ${sql.array(ats, 'float8')}) AS u(id, at)
    WHERE t.id = u.id`);
  return ids.length;
}
