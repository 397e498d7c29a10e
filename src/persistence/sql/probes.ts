/** The database reachability probe (health endpoint, `doctor`). */
import { sql } from 'slonik';
import type { Db } from '../db.ts';

/**
 * The cheapest round trip that proves a pooled connection answers: a connection is taken and a
 * statement runs (no table is read, so a missing migration does not make the database "down").
 * @example await selectOne(db) // 1
 */
export function selectOne(db: Db) {
  return db.oneFirst(sql.unsafe`SELECT 1`);
}
