import { describe, expect, it } from 'vitest';
import {
  DEFAULT_WEIGHTS,
  factorsFromPackages,
  riskLevel,
  scoreWeightsSchema,
  successScore,
  type RiskFactors,
} from './score.ts';

const none: RiskFactors = {
  affectsKernel: false,
  requiresReboot: false,
  modifiesConfig: false,
  dependencyCount: 0,
  totalSizeKb: 100,
  timesTested: 0,
  timesFailed: 0,
};

describe('successScore', () => {
  it('starts at 100 with no risk factor (100 KB: 0.2 size points, no small-patch bonus)', () => {
    expect(successScore(none)).toMatchObject({
      size: 0.2,
      small_patch_bonus: 0,
      raw: 99.8,
      score: 100,
      risk_level: 'Low',
    });
    expect(successScore({ ...none, totalSizeKb: 500 }).score).toBe(99);
  });

  it('takes 30 for the kernel, 15 for a reboot, 10 for config', () => {
    expect(successScore({ ...none, affectsKernel: true }).score).toBe(70);
    expect(successScore({ ...none, requiresReboot: true }).score).toBe(85);
    expect(successScore({ ...none, modifiesConfig: true }).score).toBe(90);
    expect(successScore({ ...none, affectsKernel: true, requiresReboot: true, modifiesConfig: true })).toMatchObject({
      kernel: 30,
      reboot: 15,
      config: 10,
      score: 45,
    });
  });

  it('takes 3 per dependency, at most 15', () => {
    expect(successScore({ ...none, dependencyCount: 1 }).dependencies).toBe(3);
    expect(successScore({ ...none, dependencyCount: 4 }).dependencies).toBe(12);
    expect(successScore({ ...none, dependencyCount: 5 }).dependencies).toBe(15);
    expect(successScore({ ...none, dependencyCount: 40 }).dependencies).toBe(15);
  });

  it('takes 2 per MB, at most 10', () => {
    expect(successScore({ ...none, totalSizeKb: 1024 }).size).toBe(2);
    expect(successScore({ ...none, totalSizeKb: 2560 }).size).toBe(5);
    expect(successScore({ ...none, totalSizeKb: 5 * 1024 }).size).toBe(10);
    expect(successScore({ ...none, totalSizeKb: 500 * 1024 }).size).toBe(10);
  });

  it('counts history only once tested at least 3 times, up to 20 at a 100 % failure rate', () => {
    expect(successScore({ ...none, timesTested: 2, timesFailed: 2 }).history).toBe(0);
    expect(successScore({ ...none, timesTested: 3, timesFailed: 3 }).history).toBe(20);
    expect(successScore({ ...none, timesTested: 4, timesFailed: 1 }).history).toBe(5);
    expect(successScore({ ...none, timesTested: 10, timesFailed: 0 }).history).toBe(0);
  });

  it('adds 5 when the errata is smaller than 100 KB, and clamps to 100', () => {
    expect(successScore({ ...none, totalSizeKb: 99 })).toMatchObject({ small_patch_bonus: 5, raw: 104.8, score: 100 });
    expect(successScore({ ...none, totalSizeKb: 100 }).small_patch_bonus).toBe(0);
    expect(successScore({ ...none, totalSizeKb: 50, modifiesConfig: true }).score).toBe(95);
  });

  it('clamps at 0 with every penalty at its maximum and heavier weights', () => {
    const worst: RiskFactors = {
      affectsKernel: true,
      requiresReboot: true,
      modifiesConfig: true,
      dependencyCount: 99,
      totalSizeKb: 999_999,
      timesTested: 5,
      timesFailed: 5,
    };
    expect(successScore(worst)).toMatchObject({ raw: 0, score: 0, risk_level: 'Very High' });
    const heavy = scoreWeightsSchema.parse({ kernel_penalty: 60 });
    expect(successScore(worst, heavy)).toMatchObject({ raw: -30, score: 0 });
  });

  it('uses the weights it is given', () => {
    const w = scoreWeightsSchema.parse({ kernel_penalty: 10, small_patch_bonus: 0 });
    expect(successScore({ ...none, affectsKernel: true, totalSizeKb: 10 }, w).score).toBe(90);
    expect(DEFAULT_WEIGHTS.history_min_tests).toBe(3);
    expect(scoreWeightsSchema.safeParse({ kernel_penalty: -1 }).success).toBe(false);
  });

  it('bands: 80–100 Low, 60–79 Medium, 40–59 High, 0–39 Very High', () => {
    expect([100, 80, 79, 60, 59, 40, 39, 0].map(riskLevel)).toEqual([
      'Low',
      'Low',
      'Medium',
      'Medium',
      'High',
      'High',
      'Very High',
      'Very High',
    ]);
  });
});

describe('factorsFromPackages', () => {
  it('recognises kernel, reboot and config packages by the design patterns', () => {
    const f = factorsFromPackages(
      [
        { name: 'linux-image-6.8.0-45-generic', size: 15 * 1024 * 1024 },
        { name: 'linux-modules-6.8.0-45-generic', size: 60 * 1024 * 1024 },
      ],
      { timesTested: 0, timesFailed: 0 },
    );
    expect(f).toMatchObject({
      affectsKernel: true,
      requiresReboot: true,
      modifiesConfig: false,
      dependencyCount: 1,
      totalSizeKb: 76800,
    });
    expect(successScore(f).score).toBe(100 - 30 - 15 - 3 - 10);
  });

  it('openssl needs a reboot, nginx touches config, a small libc-free fix scores high', () => {
    expect(
      factorsFromPackages(
        [
          { name: 'openssl', size: 1_500_000 },
          { name: 'libssl3', size: 2_000_000 },
        ],
        { timesTested: 0, timesFailed: 0 },
      ),
    ).toMatchObject({ requiresReboot: true, affectsKernel: false });
    expect(
      factorsFromPackages([{ name: 'nginx-core', size: 600_000 }], { timesTested: 0, timesFailed: 0 }).modifiesConfig,
    ).toBe(true);
    const tiny = factorsFromPackages([{ name: 'tzdata', size: 40_000 }], { timesTested: 0, timesFailed: 0 });
    expect(successScore(tiny).score).toBe(100);
  });

  it('honours UYUNI reboot_suggested and ignores missing or bogus sizes', () => {
    const f = factorsFromPackages([{ name: 'foo' }, { name: 'bar', size: Number.NaN }, { name: 'foo' }], {
      timesTested: 3,
      timesFailed: 1,
      rebootSuggested: true,
    });
    expect(f).toMatchObject({ requiresReboot: true, dependencyCount: 1, totalSizeKb: 0 });
  });
});
