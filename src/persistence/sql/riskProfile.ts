/** Queries of the risk profiles (`patch_risk_profile`) and what computing one reads. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const profileInputRow = z.object({
  errata_id: z.string(),
  packages: z.unknown().nullable(),
  reboot_suggested: z.boolean(),
  target_os: z.string(),
});

/** What a profile is computed from. @example const rows = await listProfileInputs(db, ['USN-7001-1']); */
export function listProfileInputs(db: Db, ids: string[]) {
  return db.any(sql.type(profileInputRow)`
    SELECT e.errata_id, e.packages, e.reboot_suggested, e.target_os FROM errata_cache e
    WHERE e.errata_id = ANY(${sql.array(ids, 'text')})`);
}

/**
 * Test history of an errata and of the similar ones: same OS, sharing a package (a new nginx
 * errata inherits what the earlier nginx errata did on the test systems).
 * @example const { tested, failed } = await getSimilarHistory(db, 'USN-7001-1', 'ubuntu', ['nginx']);
 */
export function getSimilarHistory(db: Db, errataId: string, os: string, packageNames: string[]) {
  return db.one(sql.type(z.object({ tested: z.number(), failed: z.number() }))`
    SELECT coalesce(sum(r.times_tested), 0)::int AS tested, coalesce(sum(r.times_failed), 0)::int AS failed
    FROM patch_risk_profile r JOIN errata_cache e ON e.errata_id = r.errata_id
    WHERE r.times_tested > 0 AND (
      e.errata_id = ${errataId}
      OR (e.target_os = ${os} AND jsonb_typeof(e.packages) = 'array'
          AND EXISTS (SELECT 1 FROM jsonb_array_elements(e.packages) p
                      WHERE p->>'name' = ANY(${sql.array(packageNames, 'text')}))))`);
}

/**
 * Store an errata's profile and score breakdown; the test counters (times tested/failed) are the
 * projection's and are left as they are.
 * @example await upsertRiskProfile(db, 'USN-7001-1', factors, 3, breakdown);
 */
export function upsertRiskProfile(
  db: Db,
  errataId: string,
  f: {
    affectsKernel: boolean;
    requiresReboot: boolean;
    modifiesConfig: boolean;
    dependencyCount: number;
    totalSizeKb: number;
  },
  packageCount: number,
  b: { score: number },
) {
  return db.query(sql.unsafe`
    INSERT INTO patch_risk_profile (errata_id, affects_kernel, requires_reboot, modifies_config, dependency_count,
                                    package_count, total_size_kb, success_score, score_breakdown)
    VALUES (${errataId}, ${f.affectsKernel}, ${f.requiresReboot}, ${f.modifiesConfig}, ${f.dependencyCount},
            ${packageCount}, ${f.totalSizeKb}, ${b.score}, ${sql.jsonb(b as never)})
    ON CONFLICT (errata_id) DO UPDATE SET
      affects_kernel = excluded.affects_kernel, requires_reboot = excluded.requires_reboot,
      modifies_config = excluded.modifies_config, dependency_count = excluded.dependency_count,
      package_count = excluded.package_count, total_size_kb = excluded.total_size_kb,
      success_score = excluded.success_score, score_breakdown = excluded.score_breakdown, updated_at = now()`);
}
