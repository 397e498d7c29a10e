/** What `GET /health/detail` reads besides the queue counts (those come from `queue.ts`). */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/**
 * The highest applied migration (0 before the first one).
 * @example
 * const version = await readSchemaVersion(db); // 3
 */
export function readSchemaVersion(db: Db): Promise<number> {
  return db.oneFirst(
    sql.type(z.object({ v: z.number() }))`SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations`,
  );
}
