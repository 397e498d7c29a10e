/** The answers of `GET /risk-profile` and `GET /risk-profile/{errata_id}`: stored profiles with their risk level. */
import type { Db } from '../../persistence/db.ts';
import { getRiskProfile, listRiskProfiles } from '../../persistence/sql/queue.ts';
import { riskLevel, type RiskLevel } from '../score.ts';

/** The success-score band of each risk level (the inverse of `riskLevel`). */
const BANDS: Record<RiskLevel, readonly [number, number]> = {
  Low: [80, 100],
  Medium: [60, 79],
  High: [40, 59],
  'Very High': [0, 39],
};

const withLevel = <T extends Record<string, unknown>>(row: T) => ({
  ...row,
  risk_level: riskLevel(row.success_score as number),
});

/**
 * One page of profiles (lowest score first), optionally of one risk level, and how many match.
 * @example
 * const { items, total } = await riskProfilePage(db, { risk_level: 'High', limit: 100, offset: 0 });
 */
export async function riskProfilePage(
  db: Db,
  q: { risk_level?: RiskLevel | undefined; limit: number; offset: number },
) {
  const { items, total } = await listRiskProfiles(db, {
    band: q.risk_level ? BANDS[q.risk_level] : undefined,
    limit: q.limit,
    offset: q.offset,
  });
  return { items: items.map(withLevel), total };
}

/**
 * One errata's profile with its risk level, or null when it has none.
 * @example
 * const profile = await riskProfileOf(db, 'USN-7000-1');
 */
export async function riskProfileOf(db: Db, errataId: string) {
  const row = await getRiskProfile(db, errataId);
  return row ? withLevel(row) : null;
}
