/** What the actor host reads outside the entry's snapshot (its leases and writes are in entries.ts). */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/**
 * An entry's errata and OS from its row, not its snapshot: what a quarantine seeds the replacement
 * context with when the snapshot itself is unusable.
 * @example await getEntryErrata(db, 7) // { errata_id: 'USN-7001-1', target_os: 'ubuntu' } | null
 */
export function getEntryErrata(db: Db, id: number) {
  return db.maybeOne(sql.type(z.object({ errata_id: z.string(), target_os: z.string() }))`
    SELECT errata_id, target_os FROM patch_test_queue WHERE id = ${id}`);
}
