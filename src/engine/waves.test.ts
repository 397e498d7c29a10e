import { describe, expect, it } from 'vitest';
import { rolloutPolicySchema } from '../services/settings.ts';
import { planWaves, systemsByGroup, thresholdExceeded } from './waves.ts';

const defaults = rolloutPolicySchema.parse({}); // canary 1, waves 25/50/100 %, max 1 system or 5 %
const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('wave planning', () => {
  it('a canary, then each cumulative percentage of the group (rounded up), with the default policy', () => {
    const waves = planWaves(new Map([['prod-web', ids(1, 20)]]), defaults);
    expect(waves.map((w) => w.systems.length)).toEqual([1, 4, 5, 10]);
    expect(waves.flatMap((w) => w.systems)).toEqual(ids(1, 20));
    expect(waves.every((w) => w.group === 'prod-web')).toBe(true);
  });

  it('never spans groups, orders groups by name and systems by id, and has no empty wave', () => {
    const byGroup = systemsByGroup([
      { system_id: 9, group_name: 'prod-web' },
      { system_id: 3, group_name: 'prod-db' },
      { system_id: 5, group_name: 'prod-web' },
      { system_id: 1, group_name: 'prod-db' },
    ]);
    expect(byGroup).toEqual(
      new Map([
        ['prod-web', [9, 5]],
        ['prod-db', [3, 1]],
      ]),
    );
    expect(planWaves(byGroup, defaults)).toEqual([
      { group: 'prod-db', systems: [1] },
      { group: 'prod-db', systems: [3] },
      { group: 'prod-web', systems: [5] },
      { group: 'prod-web', systems: [9] },
    ]);
  });

  it('without a canary, and with percentages that do not reach 100 %: the rest is a last wave', () => {
    const waves = planWaves(new Map([['g', ids(1, 10)]]), { canary_systems: 0, wave_percentages: [30, 60] });
    expect(waves.map((w) => w.systems)).toEqual([ids(1, 3), ids(4, 3), ids(7, 4)]);
  });

  it('percentages are taken in increasing order; one below the canary adds no wave', () => {
    const waves = planWaves(new Map([['g', ids(1, 10)]]), { canary_systems: 2, wave_percentages: [100, 10, 50] });
    expect(waves.map((w) => w.systems)).toEqual([ids(1, 2), ids(3, 3), ids(6, 5)]);
  });

  it('a canary larger than the group is the whole group; a group without systems has no wave', () => {
    expect(planWaves(new Map([['g', [7, 8]]]), { canary_systems: 5, wave_percentages: [50, 100] })).toEqual([
      { group: 'g', systems: [7, 8] },
    ]);
    expect(planWaves(new Map([['g', []]]), defaults)).toEqual([]);
    expect(planWaves(new Map(), defaults)).toEqual([]);
  });
});

describe('error threshold (halt rule)', () => {
  it('halts when more systems failed than the count allows', () => {
    expect(thresholdExceeded(1, 1000, defaults)).toBeNull();
    expect(thresholdExceeded(2, 1000, defaults)).toBe('2 system(s) failed (threshold 1)');
  });

  it('halts when strictly more than the percentage failed', () => {
    const p = { max_failed_systems: 100, max_failed_percent: 5 };
    expect(thresholdExceeded(5, 100, p)).toBeNull(); // exactly 5 %: not more
    expect(thresholdExceeded(6, 100, p)).toBe('6% of systems failed (threshold 5%)');
    expect(thresholdExceeded(1, 3, p)).toBe('33.3% of systems failed (threshold 5%)');
  });

  it('the count is checked first; no failure never halts, nor an empty deployment', () => {
    expect(thresholdExceeded(3, 4, { max_failed_systems: 1, max_failed_percent: 5 })).toBe(
      '3 system(s) failed (threshold 1)',
    );
    expect(thresholdExceeded(0, 10, { max_failed_systems: 0, max_failed_percent: 0 })).toBeNull();
    expect(thresholdExceeded(0, 0, defaults)).toBeNull();
  });

  it('a zero threshold halts at the first failure', () => {
    expect(thresholdExceeded(1, 50, { max_failed_systems: 0, max_failed_percent: 100 })).toBe(
      '1 system(s) failed (threshold 0)',
    );
  });
});
