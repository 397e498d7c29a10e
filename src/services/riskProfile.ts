/**
 * Risk profiles: when an errata is queued its packages are fetched from UYUNI (on demand, not
 * during the sync), the success score is computed with the weights of
 * `orchestrator_config.score_weights`, and the profile with its breakdown is stored in
 * `patch_risk_profile`. Without UYUNI, a stored profile (or its history) is used, else 50.
 */
import type { Db } from '../persistence/db.ts';
import { setErrataPackages } from '../persistence/sql/errataFacts.ts';
import { getSimilarHistory, listProfileInputs, upsertRiskProfile } from '../persistence/sql/riskProfile.ts';
import { factorsFromPackages, successScore, type PackageInfo, type ScoreBreakdown } from './score.ts';
import { loadScoreWeights } from './settings.ts';
import { UyuniFault, type UyuniClient } from './uyuni/client.ts';

/**
 * Compute, store and return the breakdown of each errata (packages fetched for those without them).
 * @example const scores = await profileErrata(db, ['USN-7001-1'], uyuni); // Map { 'USN-7001-1' => { score: 72, … } }
 */
export async function profileErrata(
  db: Db,
  ids: string[],
  uyuni: UyuniClient | undefined,
): Promise<Map<string, ScoreBreakdown>> {
  if (ids.length === 0) return new Map();
  const weights = await loadScoreWeights(db);
  const rows = await listProfileInputs(db, ids);
  const missing = rows.filter((r) => r.packages === null).map((r) => r.errata_id);
  const fetched = new Map<string, PackageInfo[]>();
  if (uyuni && missing.length > 0) {
    await uyuni.withSession(async (s) => {
      await Promise.all(
        missing.map(async (id) => {
          // An errata UYUNI does not know (a fault: a definite answer) has no packages to score;
          // it must not cost the others their profiles. UYUNI unreachable still fails the call.
          const pkgs = await s.listPackages(id).catch((raw) => {
            if (raw instanceof UyuniFault) return null;
            throw raw;
          });
          if (pkgs === null) return;
          fetched.set(
            id,
            pkgs.map((p) => ({ name: p.name, size: typeof p.size === 'string' ? Number(p.size) : p.size })),
          );
        }),
      );
    });
    for (const [id, pkgs] of fetched) await setErrataPackages(db, id, pkgs);
  }
  const out = new Map<string, ScoreBreakdown>();
  for (const r of rows) {
    const pkgs = fetched.get(r.errata_id) ?? (Array.isArray(r.packages) ? (r.packages as PackageInfo[]) : null);
    if (pkgs === null) continue; // nothing known about its packages: keep the stored profile or the default
    const h = await getSimilarHistory(db, r.errata_id, r.target_os, [...new Set(pkgs.map((p) => p.name))]);
    const factors = factorsFromPackages(pkgs, {
      timesTested: h.tested,
      timesFailed: h.failed,
      rebootSuggested: r.reboot_suggested,
    });
    const b = successScore(factors, weights);
    await upsertRiskProfile(db, r.errata_id, factors, pkgs.length, b);
    out.set(r.errata_id, b);
  }
  return out;
}
