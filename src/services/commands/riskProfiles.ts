/** `POST /risk-profile/calculate`: recompute the profiles of cached errata (packages from UYUNI when configured). */
import { AppError } from '../../errors.ts';
import type { Db } from '../../persistence/db.ts';
import { findCachedErrataIds } from '../../persistence/sql/queue.ts';
import { profileErrata } from '../riskProfile.ts';
import type { UyuniClient } from '../uyuni/client.ts';

/**
 * Recompute the given errata's profiles. Ids not in the errata cache are reported as `unknown`
 * (404 when none is known); known errata without packages are reported as `without_packages`.
 * @example
 * const { calculated, unknown } = await recalculateRiskProfiles(db, ['USN-7000-1'], uyuni);
 */
export async function recalculateRiskProfiles(db: Db, ids: string[], uyuni: UyuniClient | undefined) {
  const known = new Set(await findCachedErrataIds(db, ids));
  const unknown = ids.filter((x) => !known.has(x));
  if (unknown.length === ids.length) {
    throw new AppError(
      404,
      'unknown_errata',
      `none of the errata is in the errata cache: ${unknown.slice(0, 5).join(', ')}`,
    );
  }
  const profiles = await profileErrata(db, [...known], uyuni);
  return {
    calculated: [...profiles.entries()].map(([errata_id, b]) => ({ errata_id, ...b })),
    without_packages: [...known].filter((x) => !profiles.has(x)),
    unknown,
  };
}
