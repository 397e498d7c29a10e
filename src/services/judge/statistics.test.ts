/**
 * Reference values: every number below is either
 * - printed by SciPy 1.17.1 (`scipy.stats.mannwhitneyu`, `scipy.stats.norm`) for the call written
 *   next to it, including the examples of SciPy's own docstring (scipy/stats/_mannwhitneyu.py);
 * - a textbook table value (two-tailed α = 0.05 critical values of U), which SciPy's exact
 *   distribution (`_MWU(n1, n2).cdf`) reproduces;
 * - an interval found by inverting SciPy's test: the set of shifts d for which
 *   `mannwhitneyu(x - d, y, method=…).pvalue >= alpha`, scanned over the midpoints of the sorted
 *   differences; or
 * - computed here by brute force (enumerating every assignment of the pooled ranks), where the
 *   test says so.
 */
import { describe, expect, it } from 'vitest';
import {
  hodgesLehmann,
  mannWhitneyU,
  median,
  normalCdf,
  normalQuantile,
  normalSf,
  pairwiseDifferences,
  uDistribution,
} from './statistics.ts';
import { prng } from '../../random.ts';

/** SciPy's docstring example: diagnosis ages of type II diabetes, males vs females (Shier 2004). */
const MALES = [19, 22, 16, 29, 24];
const FEMALES = [20, 11, 17, 12];
/** Hollander & Wolfe (1973) p. 69, permeability constants, used by R's ?wilcox.test example. */
const HW_X = [0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46];
const HW_Y = [1.15, 0.88, 0.9, 0.74, 1.21];
/** Two continuous samples (numpy default_rng(12345), normal(10, 2, 20) and normal(11.5, 2, 25), rounded to 3 digits). */
const C1 = [
  7.152, 12.527, 8.259, 9.482, 9.849, 8.518, 7.264, 11.298, 10.722, 6.094, 14.695, 11.937, 8.481, 11.804, 9.066, 9.879,
  11.578, 7.487, 11.152, 12.798,
];
const C2 = [
  14.145, 10.901, 13.306, 8.257, 11.184, 12.399, 8.813, 11.337, 14.949, 16.736, 13.055, 13.157, 9.582, 9.081, 8.675,
  12.583, 13.004, 10.182, 9.043, 12.015, 12.126, 11.238, 14.04, 11.314, 11.368,
];

/** Every way to choose which n1 of the n pooled positions belong to x (brute force, small n only). */
function* combinations(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield acc.slice();
    return;
  }
  for (let i = start; i <= n - (k - acc.length); i++) {
    acc.push(i);
    yield* combinations(n, k, i + 1, acc);
    acc.pop();
  }
}

/** U for x by counting pairs — the definition, independent of the rank-sum code. */
function uByPairs(x: readonly number[], y: readonly number[]): number {
  let u = 0;
  for (const a of x) for (const b of y) u += a > b ? 1 : a === b ? 0.5 : 0;
  return u;
}

/** Exact permutation p-values by enumerating every split of the pooled sample (brute force). */
function permutationP(x: readonly number[], y: readonly number[]): { greater: number; less: number; twoSided: number } {
  const pooled = [...x, ...y];
  const observed = uByPairs(x, y);
  let ge = 0;
  let le = 0;
  let total = 0;
  for (const idx of combinations(pooled.length, x.length)) {
    const set = new Set(idx);
    const u = uByPairs(
      idx.map((i) => pooled[i]!),
      pooled.filter((_, i) => !set.has(i)),
    );
    if (u >= observed - 1e-12) ge++;
    if (u <= observed + 1e-12) le++;
    total++;
  }
  return { greater: ge / total, less: le / total, twoSided: Math.min(1, (2 * Math.min(ge, le)) / total) };
}

describe('normal distribution', () => {
  it('matches scipy.stats.norm.sf / ppf to ~1e-15 relative', () => {
    // scipy.stats.norm.sf(q) for q = 1, 3, 5, -1.959963984540054, 8, 10, -0.5
    const cases: [number, number][] = [
      [1, 0.15865525393145707],
      [3, 0.0013498980316300933],
      [5, 2.866515718791933e-7],
      [-1.959963984540054, 0.975],
      [8, 6.22096057427174e-16],
      [10, 7.61985302416047e-24],
      [-0.5, 0.6914624612740131],
    ];
    for (const [q, p] of cases) expect(normalSf(q) / p).toBeCloseTo(1, 12);
    expect(normalCdf(-1.959963984540054)).toBeCloseTo(0.025, 15);
    // scipy.stats.norm.ppf(0.975) → 1.959963984540054, ppf(0.995) → 2.5758293035489004
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 13);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758293035489004, 13);
    expect(normalQuantile(0.5)).toBe(0);
  });
});

describe('exact null distribution of U', () => {
  it('equals the brute-force count of every split, for all n1, n2 ≤ 6', () => {
    for (let n1 = 1; n1 <= 6; n1++) {
      for (let n2 = 1; n2 <= 6; n2++) {
        const counts = new Array(n1 * n2 + 1).fill(0);
        let total = 0;
        const values = Array.from({ length: n1 + n2 }, (_, i) => i);
        for (const idx of combinations(n1 + n2, n1)) {
          const set = new Set(idx);
          counts[
            uByPairs(
              idx,
              values.filter((i) => !set.has(i)),
            )
          ]++;
          total++;
        }
        const dist = uDistribution(n1, n2);
        expect(dist.length).toBe(n1 * n2 + 1);
        for (let k = 0; k <= n1 * n2; k++) expect(dist[k]).toBeCloseTo(counts[k] / total, 14);
      }
    }
  });

  it('reproduces the textbook two-tailed α = 0.05 critical values (largest u with 2·P(U ≤ u) ≤ 0.05)', () => {
    // Mann-Whitney table, two-tailed 0.05: n=5,5 → 2; 6,6 → 5; 7,7 → 8; 8,8 → 13; 9,9 → 17;
    // 10,10 → 23; 20,20 → 127; 5,10 → 8; 4,4 → 0; 3,3 → none. SciPy's _MWU(n1, n2).cdf agrees.
    const table: [number, number, number | null][] = [
      [5, 5, 2],
      [6, 6, 5],
      [7, 7, 8],
      [8, 8, 13],
      [9, 9, 17],
      [10, 10, 23],
      [20, 20, 127],
      [5, 10, 8],
      [4, 4, 0],
      [3, 3, null],
    ];
    for (const [n1, n2, crit] of table) {
      const dist = uDistribution(n1, n2);
      let cum = 0;
      let found: number | null = null;
      for (let u = 0; u <= (n1 * n2) / 2; u++) {
        cum += dist[u]!;
        if (2 * cum <= 0.05 + 1e-12) found = u;
      }
      expect(found, `n=${n1},${n2}`).toBe(crit);
    }
  });

  it('is symmetric and sums to 1 for unequal, larger samples', () => {
    const d = uDistribution(8, 40);
    let s = 0;
    for (let k = 0; k < d.length; k++) {
      s += d[k]!;
      expect(d[k]).toBeCloseTo(d[d.length - 1 - k]!, 15);
    }
    expect(s).toBeCloseTo(1, 12);
  });
});

describe('mannWhitneyU', () => {
  it('SciPy docstring example: U = 17, exact p = 0.1111…, asymptotic with and without continuity', () => {
    // mannwhitneyu(males, females, method="exact") → statistic 17.0, pvalue 0.1111111111111111 (also method="auto")
    expect(mannWhitneyU(MALES, FEMALES)).toMatchObject({ u: 17, method: 'exact', ties: false });
    expect(mannWhitneyU(MALES, FEMALES).pValue).toBeCloseTo(0.1111111111111111, 14);
    // method="asymptotic" → 0.11134688653314041; use_continuity=False → 0.0864107329737
    expect(mannWhitneyU(MALES, FEMALES, { method: 'asymptotic' }).pValue).toBeCloseTo(0.11134688653314041, 14);
    expect(mannWhitneyU(MALES, FEMALES, { method: 'asymptotic', continuity: false }).pValue).toBeCloseTo(
      0.0864107329737,
      12,
    );
    // mannwhitneyu(females, males, alternative="less", method="exact") → statistic 3.0, pvalue 0.05555555555555555
    const less = mannWhitneyU(FEMALES, MALES, { alternative: 'less' });
    expect(less.u).toBe(3);
    expect(less.pValue).toBeCloseTo(0.05555555555555555, 14);
  });

  it('Hollander & Wolfe p. 69 data: exact and asymptotic, one- and two-sided', () => {
    // mannwhitneyu(x, y, alternative="greater") → 35.0, 0.1272061272061272 (auto = exact: 5 values in y, no ties)
    const g = mannWhitneyU(HW_X, HW_Y, { alternative: 'greater' });
    expect(g).toMatchObject({ u: 35, method: 'exact' });
    expect(g.pValue).toBeCloseTo(0.1272061272061272, 14);
    // method="exact" two-sided → 0.2544122544122544
    expect(mannWhitneyU(HW_X, HW_Y).pValue).toBeCloseTo(0.2544122544122544, 14);
    // alternative="greater", method="asymptotic", use_continuity=False → 0.11033568095992347
    expect(
      mannWhitneyU(HW_X, HW_Y, { alternative: 'greater', method: 'asymptotic', continuity: false }).pValue,
    ).toBeCloseTo(0.11033568095992347, 14);
    // method="asymptotic" two-sided → 0.24462360512698333
    expect(mannWhitneyU(HW_X, HW_Y, { method: 'asymptotic' }).pValue).toBeCloseTo(0.24462360512698333, 14);
  });

  it('larger continuous samples: auto is asymptotic with continuity; exact on request', () => {
    // mannwhitneyu(c2, c1) → 356.0, 0.015961713095849674; use_continuity=False → 0.015468911709748135;
    // method="exact" → 0.014898037762668973
    const r = mannWhitneyU(C2, C1);
    expect(r).toMatchObject({ u: 356, method: 'asymptotic' });
    expect(r.pValue).toBeCloseTo(0.015961713095849674, 14);
    expect(mannWhitneyU(C2, C1, { continuity: false }).pValue).toBeCloseTo(0.015468911709748135, 14);
    expect(mannWhitneyU(C2, C1, { method: 'exact' }).pValue).toBeCloseTo(0.014898037762668973, 13);
  });

  it('auto stays exact while one sample has ≤ 8 values (SciPy rule)', () => {
    // mannwhitneyu([1.1, …, 8.8], [2.5, 3.5, 9.1, …, 10.1]) → 11.0, 0.00298483765976026
    const r = mannWhitneyU(
      [1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7, 8.8],
      [2.5, 3.5, 9.1, 9.2, 9.3, 9.4, 9.5, 9.6, 9.7, 9.8, 9.9, 10.1],
    );
    expect(r).toMatchObject({ u: 11, method: 'exact' });
    expect(r.pValue).toBeCloseTo(0.00298483765976026, 14);
  });

  it('ties: tie-corrected normal approximation', () => {
    // a = [1,2,2,3,3,3,4,5], b = [3,4,4,5,5,6,6,7,8]: mannwhitneyu(a, b) → 7.5, 0.006373133838085873;
    // mannwhitneyu(b, a, alternative="greater") → 64.5, 0.0031865669190429364
    const a = [1, 2, 2, 3, 3, 3, 4, 5];
    const b = [3, 4, 4, 5, 5, 6, 6, 7, 8];
    expect(mannWhitneyU(a, b)).toMatchObject({ u: 7.5, method: 'asymptotic', ties: true });
    expect(mannWhitneyU(a, b).pValue).toBeCloseTo(0.006373133838085873, 14);
    expect(mannWhitneyU(b, a, { alternative: 'greater' }).u).toBe(64.5);
    expect(mannWhitneyU(b, a, { alternative: 'greater' }).pValue).toBeCloseTo(0.0031865669190429364, 14);
  });

  it('a 0/1 series (a unit failed in 4 of 15 samples) against all zeros', () => {
    // mannwhitneyu([0]*11 + [1]*4, [0]*15) → 142.5, 0.03779865250526667; alternative="greater" → 0.018899326252633335
    const post = [...new Array(11).fill(0), 1, 1, 1, 1];
    const base = new Array(15).fill(0);
    expect(mannWhitneyU(post, base).u).toBe(142.5);
    expect(mannWhitneyU(post, base).pValue).toBeCloseTo(0.03779865250526667, 14);
    expect(mannWhitneyU(post, base, { alternative: 'greater' }).pValue).toBeCloseTo(0.018899326252633335, 14);
  });

  it('identical samples and all-zero series: p = 1, no NaN', () => {
    // mannwhitneyu([3,3,3], [3,3,3]) → 4.5, 1.0; mannwhitneyu([0]*10, [0]*12) → 60.0, 1.0
    expect(mannWhitneyU([3, 3, 3], [3, 3, 3])).toMatchObject({ u: 4.5, pValue: 1 });
    expect(mannWhitneyU(new Array(10).fill(0), new Array(12).fill(0))).toMatchObject({ u: 60, pValue: 1 });
    expect(mannWhitneyU(new Array(10).fill(0), new Array(12).fill(0), { alternative: 'greater' }).pValue).toBe(1);
    expect(mannWhitneyU([5, 5, 5, 5], [5, 5, 5, 5, 5, 5, 5, 5, 5, 5])).toMatchObject({
      pValue: 1,
      method: 'asymptotic',
    });
  });

  it('tiny samples: one value each is exact and can never reject', () => {
    expect(mannWhitneyU([2], [1])).toMatchObject({ u: 1, pValue: 1, method: 'exact' });
    expect(mannWhitneyU([2], [1], { alternative: 'greater' }).pValue).toBeCloseTo(0.5, 15);
    expect(mannWhitneyU([4, 5, 6], [1, 2, 3], { alternative: 'greater' }).pValue).toBeCloseTo(1 / 20, 15);
  });

  it('exact p-values equal a brute-force permutation count on random small samples without ties (computed here)', () => {
    const rnd = prng(7);
    for (let trial = 0; trial < 40; trial++) {
      const n1 = 1 + Math.floor(rnd() * 6);
      const n2 = 1 + Math.floor(rnd() * 6);
      const x = Array.from({ length: n1 }, () => rnd() * 10 + trial / 7);
      const y = Array.from({ length: n2 }, () => rnd() * 10);
      const brute = permutationP(x, y);
      expect(mannWhitneyU(x, y, { method: 'exact' }).pValue).toBeCloseTo(brute.twoSided, 13);
      expect(mannWhitneyU(x, y, { alternative: 'greater', method: 'exact' }).pValue).toBeCloseTo(brute.greater, 13);
      expect(mannWhitneyU(x, y, { alternative: 'less', method: 'exact' }).pValue).toBeCloseTo(brute.less, 13);
    }
  });

  it('variance inflation forces the normal approximation and only raises p', () => {
    const plain = mannWhitneyU(C2, C1);
    const inflated = mannWhitneyU(C2, C1, { varianceInflation: 3 });
    expect(inflated.method).toBe('asymptotic');
    expect(inflated.pValue).toBeGreaterThan(plain.pValue);
    expect(inflated.z! * Math.sqrt(3)).toBeCloseTo(plain.z!, 12);
    expect(() => mannWhitneyU([1], [2], { varianceInflation: 0.5 })).toThrow(RangeError);
  });

  it('rejects empty samples and NaN', () => {
    expect(() => mannWhitneyU([], [1])).toThrow(/empty/);
    expect(() => mannWhitneyU([1, NaN], [1])).toThrow(/non-finite/);
  });
});

describe('hodgesLehmann', () => {
  it('Hollander & Wolfe data: estimate 0.305, exact 95 % interval [−0.15, 0.76] (inverting SciPy exact)', () => {
    // median of the 50 differences x − y is 0.305; {d : mannwhitneyu(x − d, y, method="exact").pvalue ≥ 0.05}
    // closes to [−0.15, 0.76]
    const s = hodgesLehmann(HW_X, HW_Y);
    expect(s.method).toBe('exact');
    expect(s.estimate).toBeCloseTo(0.305, 12);
    expect(s.low).toBeCloseTo(-0.15, 12);
    expect(s.high).toBeCloseTo(0.76, 12);
    expect(s.achievedConfidence).toBeGreaterThanOrEqual(0.95);
  });

  it('SciPy docstring data: estimate 7, exact 95 % interval [−1, 17] (inverting SciPy exact)', () => {
    expect(hodgesLehmann(MALES, FEMALES)).toMatchObject({ estimate: 7, low: -1, high: 17, method: 'exact' });
    // achieved: k = 2 (P(U ≤ 1) = 2/126 < 0.025 ≤ P(U ≤ 2) = 4/126), so 1 − 2·2/126
    expect(hodgesLehmann(MALES, FEMALES).achievedConfidence).toBeCloseTo(1 - 4 / 126, 14);
  });

  it('large samples: asymptotic interval [0.257, 3.055] at 95 % and [−0.224, 3.645] at 99 % (inverting SciPy asymptotic)', () => {
    const s95 = hodgesLehmann(C2, C1);
    expect(s95.method).toBe('asymptotic');
    expect(s95.estimate).toBeCloseTo(1.6395, 12);
    expect(s95.low).toBeCloseTo(0.257, 12);
    expect(s95.high).toBeCloseTo(3.055, 12);
    const s99 = hodgesLehmann(C2, C1, { confidence: 0.99 });
    expect(s99.low).toBeCloseTo(-0.224, 12);
    expect(s99.high).toBeCloseTo(3.645, 12);
  });

  it('the exact interval is the inversion of the brute-force permutation test (computed here)', () => {
    const rnd = prng(11);
    for (let trial = 0; trial < 25; trial++) {
      const n1 = 3 + Math.floor(rnd() * 4);
      const n2 = 3 + Math.floor(rnd() * 4);
      const x = Array.from({ length: n1 }, () => Math.round(rnd() * 1e6) / 1e3 + 100);
      const y = Array.from({ length: n2 }, () => Math.round(rnd() * 1e6) / 1e3 + 100);
      const s = hodgesLehmann(x, y, { method: 'exact' });
      const d = Array.from(pairwiseDifferences(x, y));
      const mids = d
        .slice(0, -1)
        .map((v, i) => (v + d[i + 1]!) / 2)
        .filter((m, i) => d[i] !== d[i + 1]);
      const accepted = mids.filter(
        (m) =>
          permutationP(
            x.map((v) => v - m),
            y,
          ).twoSided >= 0.05,
      );
      if (accepted.length === 0) continue;
      // every accepted shift lies inside, every rejected one outside
      for (const m of mids) {
        const inside = m > s.low && m < s.high;
        expect(accepted.includes(m), `trial ${trial} d=${m}`).toBe(inside);
      }
    }
  });

  it('estimate is the median of the pairwise differences, with ties', () => {
    const x = [1, 2, 2, 3, 10];
    const y = [0, 2, 2];
    const diffs = x.flatMap((a) => y.map((b) => a - b));
    expect(hodgesLehmann(x, y).estimate).toBe(median(diffs));
    expect(hodgesLehmann(x, y).method).toBe('asymptotic');
  });

  it('identical samples and all-zero series: shift 0, interval [0, 0]', () => {
    expect(hodgesLehmann([4, 4, 4], [4, 4, 4])).toMatchObject({ estimate: 0, low: 0, high: 0 });
    expect(hodgesLehmann(new Array(20).fill(0), new Array(20).fill(0))).toMatchObject({ estimate: 0, low: 0, high: 0 });
  });

  it('a step from all 0 to all 1 is a shift of exactly 1', () => {
    expect(hodgesLehmann(new Array(12).fill(1), new Array(12).fill(0))).toMatchObject({ estimate: 1, low: 1, high: 1 });
  });

  it('tiny samples: one value each gives the single difference', () => {
    expect(hodgesLehmann([5], [2])).toMatchObject({ estimate: 3, low: 3, high: 3, method: 'exact' });
  });

  it('variance inflation widens the interval around the same estimate', () => {
    const plain = hodgesLehmann(C2, C1);
    const wide = hodgesLehmann(C2, C1, { varianceInflation: 4 });
    expect(wide.estimate).toBe(plain.estimate);
    expect(wide.low).toBeLessThan(plain.low);
    expect(wide.high).toBeGreaterThan(plain.high);
  });
});
