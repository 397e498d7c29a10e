/**
 * The rollout policy's arithmetic (pure, no I/O): which systems go in which wave, and when failures
 * halt the deployment. The rollout effects call these; their unit tests need no database.
 */
import type { RolloutPolicy } from '../services/settings.ts';

export interface PlannedWave {
  group: string;
  systems: number[];
}

/**
 * The systems of each production group, in the order given.
 * @example systemsByGroup([{ system_id: 2, group_name: 'prod-web' }]) // Map { 'prod-web' => [2] }
 */
export function systemsByGroup(systems: readonly { system_id: number; group_name: string }[]): Map<string, number[]> {
  const byGroup = new Map<string, number[]>();
  for (const s of systems) byGroup.set(s.group_name, [...(byGroup.get(s.group_name) ?? []), s.system_id]);
  return byGroup;
}

/**
 * Waves per group (groups by name, systems by id): a canary wave of `canary_systems`, then up to each
 * cumulative percentage of the group's systems (rounded up), then the rest. A wave never spans groups
 * and is never empty.
 * @example
 * planWaves(new Map([['prod-web', [1, 2, 3, 4]]]), { ...policy, canary_systems: 1, wave_percentages: [50, 100] })
 * // [{ group: 'prod-web', systems: [1] }, { group: 'prod-web', systems: [2] }, { group: 'prod-web', systems: [3, 4] }]
 */
export function planWaves(
  systemsByGroup: Map<string, number[]>,
  p: Pick<RolloutPolicy, 'canary_systems' | 'wave_percentages'>,
): PlannedWave[] {
  const waves: PlannedWave[] = [];
  for (const [group, ids] of [...systemsByGroup].sort(([a], [b]) => a.localeCompare(b))) {
    const sorted = [...ids].sort((a, b) => a - b);
    let done = 0;
    if (p.canary_systems > 0 && sorted.length > 0) {
      done = Math.min(p.canary_systems, sorted.length);
      waves.push({ group, systems: sorted.slice(0, done) });
    }
    for (const pct of [...p.wave_percentages].sort((a, b) => a - b)) {
      const upTo = Math.max(done, Math.ceil((sorted.length * pct) / 100));
      if (upTo > done) waves.push({ group, systems: sorted.slice(done, upTo) });
      done = upTo;
    }
    if (done < sorted.length) waves.push({ group, systems: sorted.slice(done) });
  }
  return waves;
}

/**
 * The halt rule: has the error threshold been exceeded? More failed systems than
 * `max_failed_systems`, or more than `max_failed_percent` of the deployment's systems (strictly
 * more, as AWS rate control). Returns why, or null to go on.
 * @example
 * thresholdExceeded(2, 100, { max_failed_systems: 1, max_failed_percent: 5 }) // '2 system(s) failed (threshold 1)'
 */
export function thresholdExceeded(
  failed: number,
  total: number,
  p: Pick<RolloutPolicy, 'max_failed_systems' | 'max_failed_percent'>,
): string | null {
  if (failed > p.max_failed_systems) return `${failed} system(s) failed (threshold ${p.max_failed_systems})`;
  if (total > 0 && (failed / total) * 100 > p.max_failed_percent) {
    return `${Math.round((failed / total) * 1000) / 10}% of systems failed (threshold ${p.max_failed_percent}%)`;
  }
  return null;
}
