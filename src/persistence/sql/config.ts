/** Queries of the orchestrator_config family. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export function getConfigValue(db: Db, key: string) {
  return db.maybeOneFirst(
    sql.type(z.object({ value: z.unknown() }))`SELECT value FROM orchestrator_config WHERE key = ${key}`,
  );
}

export function setConfigValue(db: Db, key: string, value: unknown, by: string) {
  return db.query(sql.unsafe`
    INSERT INTO orchestrator_config (key, value, updated_by) VALUES (${key}, ${sql.jsonb(value as never)}, ${by})
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, updated_at = now()`);
}
