/**
 * Risk profiles: when an errata is queued its packages are fetched from UYUNI (on demand, not
 * during the sync), the success score is computed with the weights of
 * `orchestrator_config.score_weights`, and the profile with its breakdown is stored in
 * `patch_risk_profile`. Without UYUNI, a stored profile (or its history) is used, else 50.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../persistence/db.ts';
import { factorsFromPackages, successScore, type PackageInfo, type ScoreBreakdown } from './score.ts';
import { loadScoreWeights } from './settings.ts';
import type { UyuniClient } from './uyuni/client.ts';

const profileInputs = z.object({ errata_id: z.string(), packages: z.unknown().nullable(), reboot_suggested: z.boolean(), target_os: z.string() });
const history = z.object({ tested: z.number(), failed: z.number() });

/**
 * Test history of an errata and of the similar ones: same OS, sharing a package (a new nginx
 * errata inherits what the earlier nginx errata did on the test systems).
 */
async function similarHistory(db: Db, errataId: string, os: string, names: string[]): Promise<{ tested: number; failed: number }> {
  return db.one(sql.type(history)`
    SELECT coalesce(sum(r.times_tested), 0)::int AS tested, coalesce(sum(r.times_failed), 0)::int AS failed
    FROM patch_risk_profile r JOIN errata_cache e ON e.errata_id = r.errata_id
    WHERE r.times_tested > 0 AND (e.errata_id = ${errataId} OR (e.target_os = ${os} AND jsonb_typeof(e.packages) = 'array'
      AND EXISTS (SELECT 1 FROM jsonb_array_elements(e.packages) p WHERE p->>'name' = ANY(${sql.array(names, 'text')}))))`);
}

/** Compute, store and return the breakdown of each errata (packages fetched for those without them). */
export async function profileErrata(db: Db, ids: string[], uyuni: UyuniClient | undefined): Promise<Map<string, ScoreBreakdown>> {
  if (ids.length === 0) return new Map();
  const weights = await loadScoreWeights(db);
  const rows = await db.any(sql.type(profileInputs)`
    SELECT e.errata_id, e.packages, e.reboot_suggested, e.target_os FROM errata_cache e WHERE e.errata_id = ANY(${sql.array(ids, 'text')})`);
  const missing = rows.filter((r) => r.packages === null).map((r) => r.errata_id);
  const fetched = new Map<string, PackageInfo[]>();
  if (uyuni && missing.length > 0) {
    await uyuni.withSession(async (s) => {
      await Promise.all(missing.map(async (id) => {
        const pkgs = await s.listPackages(id);
        fetched.set(id, pkgs.map((p) => ({ name: p.name, size: typeof p.size === 'string' ? Number(p.size) : p.size })));
      }));
    });
    for (const [id, pkgs] of fetched) await db.query(sql.unsafe`UPDATE errata_cache SET packages = ${sql.jsonb(pkgs as never)} WHERE errata_id = ${id}`);
  }
  const out = new Map<string, ScoreBreakdown>();
  for (const r of rows) {
    const pkgs = fetched.get(r.errata_id) ?? (Array.isArray(r.packages) ? (r.packages as PackageInfo[]) : null);
    if (pkgs === null) continue; // nothing known about its packages: keep the stored profile or the default
    const h = await similarHistory(db, r.errata_id, r.target_os, [...new Set(pkgs.map((p) => p.name))]);
    const factors = factorsFromPackages(pkgs, { timesTested: h.tested, timesFailed: h.failed, rebootSuggested: r.reboot_suggested });
    const b = successScore(factors, weights);
    await db.query(sql.unsafe`
      INSERT INTO patch_risk_profile (errata_id, affects_kernel, requires_reboot, modifies_config, dependency_count, package_count, total_size_kb, success_score, score_breakdown)
      VALUES (${r.errata_id}, ${factors.affectsKernel}, ${factors.requiresReboot}, ${factors.modifiesConfig}, ${factors.dependencyCount}, ${pkgs.length},
              ${factors.totalSizeKb}, ${b.score}, ${sql.jsonb(b as never)})
      ON CONFLICT (errata_id) DO UPDATE SET affects_kernel = excluded.affects_kernel, requires_reboot = excluded.requires_reboot,
        modifies_config = excluded.modifies_config, dependency_count = excluded.dependency_count, package_count = excluded.package_count,
        total_size_kb = excluded.total_size_kb, success_score = excluded.success_score, score_breakdown = excluded.score_breakdown, updated_at = now()`);
    out.set(r.errata_id, b);
  }
  return out;
}
