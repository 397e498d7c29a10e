/** `POST /risk-profile/calculate`: recompute the profiles of cached errata (packages from UYUNI when configured). */
import { AppError } from '../../errors.ts';
import type { Db } from '../../persistence/db.ts';
import { findCachedErrataIds } from '../../persistence/sql/queue.ts';
import { profileErrata } from '../riskProfile.ts';
import { UyuniUnavailable, type UyuniClient } from '../uyuni/client.ts';

/**
 * Recompute the given errata's profiles. Ids not in the errata cache are reported as `unknown`
 * (404 when none is known); known errata without packages (none stored, and UYUNI does not know
 * them) are reported as `without_packages`; UYUNI unreachable is 503 `uyuni_unavailable`.
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
  // UYUNI down is its answer, not an internal error (an errata UYUNI does not know is without packages).
  const profiles = await profileErrata(db, [...known], uyuni).catch((raw) => {
    if (raw instanceof UyuniUnavailable)
      throw new AppError(503, 'uyuni_unavailable', `UYUNI did not answer: ${raw.message}`);
    throw raw;
  });
  return {
    calculated: [...profiles.entries()].map(([errata_id, b]) => ({ errata_id, ...b })),
    without_packages: [...known].filter((x) => !profiles.has(x)),
    unknown,
  };
}
