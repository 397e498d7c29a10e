/** Queries of the auto-queue after a sync: which new errata its policy queues, which changed ones it re-queues. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const idRow = z.object({ id: z.string() });

/**
 * The errata among `ids` of the given advisory types, by id.
 * @example await listErrataOfAdvisoryTypes(db, report.newErrata, ['Security Advisory']) // ['USN-7001-1']
 */
export function listErrataOfAdvisoryTypes(db: Db, ids: string[], advisoryTypes: string[]) {
  return db.anyFirst(sql.type(idRow)`
    SELECT errata_id AS id FROM errata_cache
    WHERE errata_id = ANY(${sql.array(ids, 'text')}) AND advisory_type = ANY(${sql.array(advisoryTypes, 'text')})
    ORDER BY errata_id`);
}

/**
 * The errata among `ids` whose latest queue entry (highest id) ended rolled back or rejected: a new
 * version of them deserves another test (design §5 "auto-retry new version").
 * @example await listErrataLastRolledBackOrRejected(db, report.versionChanged)
 */
export function listErrataLastRolledBackOrRejected(db: Db, ids: string[]) {
  return db.anyFirst(sql.type(idRow)`
    SELECT errata_id AS id FROM (
      SELECT DISTINCT ON (errata_id) errata_id, status FROM patch_test_queue
      WHERE errata_id = ANY(${sql.array(ids, 'text')}) ORDER BY errata_id, id DESC) last
    WHERE status IN ('rolled_back', 'rejected')`);
}
