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

/**
 * Entries of the errata among `ids` that hold (or wait for) an approval production has not acted
 * on yet: a changed errata voids it (issue 12). Production-phase entries past the window are left
 * alone (their waves already run under the approval).
 * @example await listEntriesAwaitingProduction(db, report.versionChanged) // [{ id: 7, errata_id: 'USN-1', errata_version: '2' }]
 */
export function listEntriesAwaitingProduction(db: Db, ids: string[]) {
  return db.any(sql.type(
    z.object({
      id: z.number(),
      errata_id: z.string(),
      errata_version: z.string().nullable(),
      new_version: z.string().nullable(),
    }),
  )`
    SELECT q.id, q.errata_id, q.errata_version, e.errata_version AS new_version
    FROM patch_test_queue q JOIN errata_cache e ON e.errata_id = q.errata_id
    WHERE q.errata_id = ANY(${sql.array(ids, 'text')})
      AND (q.status IN ('pending_approval', 'snoozed', 'approved')
           OR (q.status = 'prod_pending' AND q.state_value = '{"prod_pending": "awaiting_window"}'::jsonb))
    ORDER BY q.id`);
}
