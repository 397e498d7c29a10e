/** The rollout policy's arithmetic (pure): which systems go in which wave, and when failures halt the deployment. */
import type { RolloutPolicy } from '../services/settings.ts';

/** Waves per group: a canary wave, then each cumulative percentage of the group's systems. */
export function planWaves(
  systemsByGroup: Map<string, number[]>,
  p: RolloutPolicy,
): { group: string; systems: number[] }[] {
  const waves: { group: string; systems: number[] }[] = [];
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

/** Has the error threshold been exceeded? (count and/or percentage of the deployment's systems) */
export function thresholdExceeded(failed: number, total: number, p: RolloutPolicy): string | null {
  if (failed > p.max_failed_systems) return `${failed} system(s) failed (threshold ${p.max_failed_systems})`;
  if (total > 0 && (failed / total) * 100 > p.max_failed_percent)
    return `${Math.round((failed / total) * 1000) / 10}% of systems failed (threshold ${p.max_failed_percent}%)`;
  return null;
}
