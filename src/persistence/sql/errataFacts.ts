/**
 * What the engine and the risk profile read from `errata_cache` beyond the sync's columns, and the
 * package lists they fetch from UYUNI on demand and cache there (the sync does not fetch them).
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export const errataFactsRow = z.object({
  errata_id: z.string(),
  uyuni_errata_id: z.number().nullable(),
  packages: z.unknown().nullable(),
  target_os: z.string(),
  reboot_suggested: z.boolean(),
  affected_system_ids: z.array(z.number()),
});
export type ErrataFactsRow = z.infer<typeof errataFactsRow>;

/** @example const row = await getErrataFacts(db, 'USN-7001-1'); // null: not synced */
export function getErrataFacts(db: Db, errataId: string) {
  return db.maybeOne(sql.type(errataFactsRow)`
    SELECT errata_id, uyuni_errata_id, packages, target_os, reboot_suggested, affected_system_ids
    FROM errata_cache WHERE errata_id = ${errataId}`);
}

/** @example await setErrataPackages(db, 'USN-7001-1', [{ name: 'nginx', size: 512 }]); */
export function setErrataPackages(db: Db, errataId: string, packages: { name: string; size?: number | undefined }[]) {
  return db.query(
    sql.unsafe`UPDATE errata_cache SET packages = ${sql.jsonb(packages as never)} WHERE errata_id = ${errataId}`,
  );
}

/**
 * The errata's severity and success score now: the approval policy's inputs (two approvers for
 * Critical severity or Very High risk) at the moment of the approval.
 * @example await getErrataSeverityAndScore(db, 'USN-7001-1') // { severity: 'Critical', success_score: 62 }
 */
export function getErrataSeverityAndScore(db: Db, errataId: string) {
  return db.maybeOne(sql.type(z.object({ severity: z.string().nullable(), success_score: z.number().nullable() }))`
    SELECT e.severity, r.success_score FROM errata_cache e LEFT JOIN patch_risk_profile r ON r.errata_id = e.errata_id
    WHERE e.errata_id = ${errataId}`);
}
