/**
 * Rank statistics for the canary judge (pure, no dependencies): the Mann-Whitney U test and the
 * Hodges–Lehmann shift with its distribution-free confidence interval.
 *
 * Conventions (the ones SciPy's `mannwhitneyu` and R's `wilcox.test` share):
 *
 * - `mannWhitneyU(x, y)` reports U for x: the number of pairs (xᵢ, yⱼ) with xᵢ > yⱼ, ties counting ½.
 *   It is SciPy's `statistic` and R's `W`.
 * - `method: 'auto'` follows SciPy (`_mwu_choose_method`): the exact null distribution when at least
 *   one sample has ≤ 8 values and there are no ties, else the normal approximation with the tie
 *   correction and the ½ continuity correction (SciPy `use_continuity=True`, R `correct=TRUE`).
 *   R's own default differs (exact below 50 values per sample): pass `method: 'exact'` for that.
 * - Two-sided p = 2 × the smaller tail, capped at 1, in both methods.
 * - `hodgesLehmann(x, y)` estimates the shift of x relative to y (R's "difference in location",
 *   `wilcox.test(x, y, conf.int = TRUE)$estimate` in the exact case): the median of all xᵢ − yⱼ.
 *   Its interval is the inversion of the same test: the differences D₍k₎ and D₍mn−k+1₎ where the test
 *   of (x − d) against y stops rejecting, so "the interval lies above a" and "the one-sided test of
 *   x − a against y rejects at α/2" are the same statement for data without ties.
 *
 * `varianceInflation` (≥ 1) widens the normal approximation for serially correlated samples
 * (variance × f, the effective-sample-size correction): exact counting assumes independent values,
 * so an inflated test is always asymptotic.
 */

import { normalCdf, normalQuantile, normalSf } from './normal.ts';

export { normalCdf, normalQuantile, normalSf } from './normal.ts';

export type Alternative = 'two-sided' | 'greater' | 'less';
export type Method = 'auto' | 'exact' | 'asymptotic';

export interface MannWhitneyOptions {
  /** 'greater': x tends to be larger than y. Default 'two-sided'. */
  alternative?: Alternative;
  /** Default 'auto' (SciPy's rule, see the module comment). */
  method?: Method;
  /** The ½ continuity correction of the normal approximation. Default true. */
  continuity?: boolean;
  /** Variance factor ≥ 1 for autocorrelated samples (forces the normal approximation). Default 1. */
  varianceInflation?: number;
}

export interface MannWhitneyResult {
  /** U for x (SciPy `statistic`, R `W`). U for y is n₁n₂ − u. */
  u: number;
  pValue: number;
  method: 'exact' | 'asymptotic';
  /** Standardised statistic (asymptotic only; continuity-corrected), null for the exact method. */
  z: number | null;
  /** Any value shared by two or more observations (pooled sample). */
  ties: boolean;
  n1: number;
  n2: number;
}

export interface ShiftEstimate {
  /** Median of the n₁n₂ differences xᵢ − yⱼ. */
  estimate: number;
  low: number;
  high: number;
  /** Confidence asked for (e.g. 0.95). */
  confidence: number;
  /** Confidence achieved by the discrete order statistics (exact method), ≥ `confidence` unless clamped. */
  achievedConfidence: number;
  method: 'exact' | 'asymptotic';
}

/** Largest n₁·n₂·min(n₁,n₂) the exact counting accepts (a few hundred ms at worst). */
export const EXACT_MAX_WORK = 5e7;

/* ------------------------------------------------------------------ ranks */

interface Ranked {
  /** Sum of the ranks of x (average ranks for ties). */
  rankSumX: number;
  /** Σ (t³ − t) over tie groups of the pooled sample. */
  tieTerm: number;
  ties: boolean;
}

function rankPooled(x: readonly number[], y: readonly number[]): Ranked {
  const pooled = x.map((v) => ({ v, fromX: true })).concat(y.map((v) => ({ v, fromX: false })));
  pooled.sort((a, b) => a.v - b.v);
  let rankSumX = 0;
  let tieTerm = 0;
  for (let i = 0; i < pooled.length; ) {
    let j = i;
    while (j + 1 < pooled.length && pooled[j + 1]!.v === pooled[i]!.v) j++;
    const t = j - i + 1;
    const rank = (i + j + 2) / 2; // average of ranks i+1 … j+1
    for (let k = i; k <= j; k++) if (pooled[k]!.fromX) rankSumX += rank;
    if (t > 1) tieTerm += t * t * t - t;
    i = j + 1;
  }
  return { rankSumX, tieTerm, ties: tieTerm > 0 };
}

function assertSample(name: string, s: readonly number[]): void {
  if (s.length === 0) throw new RangeError(`${name} is empty`);
  for (const v of s)
    if (!Number.isFinite(v)) throw new RangeError(`${name} holds a non-finite value (${v}): drop NaN and ±Inf first`);
}

/* ------------------------------------------------------------------ exact null distribution */

const exactCache = new Map<string, Float64Array>();

/**
 * P(U = k), k = 0 … n₁n₂, for samples of n₁ and n₂ distinct values under H₀ (all orderings
 * equally likely). Recurrence on the largest pooled value: it comes from x with probability
 * a/(a+b), adding b to U, else from y — P(a,b;k) = a/(a+b)·P(a−1,b;k−b) + b/(a+b)·P(a,b−1;k).
 * Probabilities rather than counts: no overflow (C(100,50) ≈ 1e29) and only additions of
 * non-negative terms, so no cancellation in the tails.
 *
 * @example uDistribution(2, 2) // [1/6, 1/6, 2/6, 1/6, 1/6]
 */
export function uDistribution(n1: number, n2: number): Float64Array {
  const a = Math.min(n1, n2);
  const b = Math.max(n1, n2); // U's distribution is the same with the samples swapped
  const key = `${a}:${b}`;
  const hit = exactCache.get(key);
  if (hit) return hit;
  if (a * b * a > EXACT_MAX_WORK)
    throw new RangeError(
      `exact Mann-Whitney distribution for n=${n1},${n2} is too large; use the normal approximation`,
    );
  // rows[i] = P(i, j; ·) for the current j (number of y values so far).
  let rows: Float64Array[] = Array.from({ length: a + 1 }, () => Float64Array.of(1));
  for (let j = 1; j <= b; j++) {
    const next: Float64Array[] = [Float64Array.of(1)]; // P(0, j; 0) = 1
    for (let i = 1; i <= a; i++) {
      const out = new Float64Array(i * j + 1);
      const fromX = next[i - 1]!; // P(i−1, j), shifted by j
      const fromY = rows[i]!; // P(i, j−1)
      const px = i / (i + j);
      const py = j / (i + j);
      for (let k = 0; k < fromX.length; k++) out[k + j]! += px * fromX[k]!;
      for (let k = 0; k < fromY.length; k++) out[k]! += py * fromY[k]!;
      next.push(out);
    }
    rows = next;
  }
  const dist = rows[a]!;
  if (exactCache.size > 64) exactCache.clear();
  exactCache.set(key, dist);
  return dist;
}

/** P(U ≤ k) from a distribution (k may be fractional or out of range). */
function cdfAt(dist: Float64Array, k: number): number {
  const top = Math.floor(k);
  if (top < 0) return 0;
  let s = 0;
  for (let i = 0; i <= Math.min(top, dist.length - 1); i++) s += dist[i]!;
  return Math.min(1, s);
}

function exactAllowed(n1: number, n2: number): boolean {
  const a = Math.min(n1, n2);
  return a * Math.max(n1, n2) * a <= EXACT_MAX_WORK;
}

function chooseMethod(
  method: Method,
  n1: number,
  n2: number,
  ties: boolean,
  inflation: number,
): 'exact' | 'asymptotic' {
  if (inflation !== 1) return 'asymptotic';
  if (method === 'exact') {
    if (!exactAllowed(n1, n2))
      throw new RangeError(
        `exact Mann-Whitney distribution for n=${n1},${n2} is too large; use the normal approximation`,
      );
    return 'exact';
  }
  if (method === 'asymptotic') return 'asymptotic';
  // SciPy: asymptotic when both samples are larger than 8, or when there are ties.
  return (n1 > 8 && n2 > 8) || ties ? 'asymptotic' : 'exact';
}

/* ------------------------------------------------------------------ the test */

/**
 * Mann-Whitney U test of x against y.
 *
 * @example
 * // SciPy's docstring example (males vs females, diagnosis age): U = 17, exact p = 0.1111…
 * mannWhitneyU([19, 22, 16, 29, 24], [20, 11, 17, 12]) // { u: 17, pValue: 0.1111111111111111, method: 'exact', … }
 */
export function mannWhitneyU(
  x: readonly number[],
  y: readonly number[],
  opts: MannWhitneyOptions = {},
): MannWhitneyResult {
  assertSample('x', x);
  assertSample('y', y);
  const alternative = opts.alternative ?? 'two-sided';
  const continuity = opts.continuity ?? true;
  const inflation = opts.varianceInflation ?? 1;
  if (!(inflation >= 1)) throw new RangeError(`varianceInflation must be ≥ 1, got ${inflation}`);
  const n1 = x.length;
  const n2 = y.length;
  const ranked = rankPooled(x, y);
  const u = ranked.rankSumX - (n1 * (n1 + 1)) / 2;
  const method = chooseMethod(opts.method ?? 'auto', n1, n2, ranked.ties, inflation);

  if (method === 'exact') {
    // U for x counts pairs; with ties it may be a half-integer: the exact tables do not apply
    // (SciPy uses them anyway), so round towards the conservative side.
    const dist = uDistribution(n1, n2);
    const upper = 1 - cdfAt(dist, Math.ceil(u) - 1); // P(U ≥ u)
    const lower = cdfAt(dist, Math.floor(u)); // P(U ≤ u)
    const p = alternative === 'greater' ? upper : alternative === 'less' ? lower : 2 * Math.min(upper, lower);
    return { u, pValue: clamp01(p), method, z: null, ties: ranked.ties, n1, n2 };
  }

  const z = standardise(u, n1, n2, ranked.tieTerm, continuity, alternative, inflation);
  const p = alternative === 'greater' ? normalSf(z) : alternative === 'less' ? normalCdf(z) : 2 * normalSf(Math.abs(z));
  return { u, pValue: clamp01(p), method, z, ties: ranked.ties, n1, n2 };
}

function clamp01(p: number): number {
  return Math.min(1, Math.max(0, p));
}

/** σ of U under H₀ with the tie correction (SciPy `_get_mwu_z`, R `wilcox.test`), times √inflation. */
function sigmaU(n1: number, n2: number, tieTerm: number, inflation: number): number {
  const n = n1 + n2;
  const v = ((n1 * n2) / 12) * (n + 1 - (n > 1 ? tieTerm / (n * (n - 1)) : 0));
  return Math.sqrt(Math.max(0, v) * inflation);
}

/**
 * z = (U − n₁n₂/2 − c)/σ with the continuity correction c = ½ towards the mean (two-sided: on
 * whichever side U lies, R's sign(z)·½). σ = 0 (every value equal): z = ±∞ past the correction, else
 * 0 — p = 1 two-sided, as SciPy answers (R has no p-value there).
 */
function standardise(
  u: number,
  n1: number,
  n2: number,
  tieTerm: number,
  continuity: boolean,
  alternative: Alternative,
  inflation: number,
): number {
  const s = sigmaU(n1, n2, tieTerm, inflation);
  let num = u - (n1 * n2) / 2;
  if (continuity) {
    if (alternative === 'greater') num -= 0.5;
    else if (alternative === 'less') num += 0.5;
    else num = Math.sign(num) * Math.max(0, Math.abs(num) - 0.5);
  }
  if (s === 0) return num === 0 ? 0 : num > 0 ? Infinity : -Infinity;
  return num / s;
}

/* ------------------------------------------------------------------ Hodges–Lehmann */

export interface ShiftOptions {
  /** Two-sided confidence level of the interval. Default 0.95. */
  confidence?: number;
  /** Default 'auto': exact counting when the test would use it (no ties, a sample ≤ 8). */
  method?: Method;
  /** As for `mannWhitneyU`. */
  varianceInflation?: number;
}

/** The n₁n₂ differences xᵢ − yⱼ, sorted. */
export function pairwiseDifferences(x: readonly number[], y: readonly number[]): Float64Array {
  const d = new Float64Array(x.length * y.length);
  let k = 0;
  for (const xi of x) for (const yj of y) d[k++] = xi - yj;
  return d.sort();
}

function medianOfSorted(s: ArrayLike<number>): number {
  const n = s.length;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median of a sample (not modified). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return medianOfSorted(Float64Array.from(values).sort());
}

/**
 * Hodges–Lehmann estimate of the shift of x relative to y with its distribution-free interval.
 *
 * Exact method (R `wilcox.test(x, y, conf.int = TRUE, exact = TRUE)`): k is the smallest count
 * with P(U ≤ k) ≥ α/2 (R's `qwilcox(α/2, m, n)`, raised to 1 when 0 as R does), and the interval is
 * [D₍k₎, D₍mn−k+1₎] with achieved confidence 1 − 2·P(U ≤ k−1).
 * Asymptotic method: the same inversion of the continuity-corrected normal test,
 * k = ⌈mn/2 − ½ − z₁₋α/₂·σ⌉ with the tie-corrected σ of the pooled data (R instead solves for the
 * interval with `uniroot`, so its asymptotic interval can differ in the last difference).
 *
 * @example
 * // Hollander & Wolfe (1973) p. 69 data, as in R's ?wilcox.test: estimate 0.305, 95 % interval [−0.15, 0.76]
 * hodgesLehmann([0.8, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46], [1.15, 0.88, 0.9, 0.74, 1.21])
 */
export function hodgesLehmann(x: readonly number[], y: readonly number[], opts: ShiftOptions = {}): ShiftEstimate {
  assertSample('x', x);
  assertSample('y', y);
  const confidence = opts.confidence ?? 0.95;
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  const inflation = opts.varianceInflation ?? 1;
  if (!(inflation >= 1)) throw new RangeError(`varianceInflation must be ≥ 1, got ${inflation}`);
  const n1 = x.length;
  const n2 = y.length;
  const mn = n1 * n2;
  const d = pairwiseDifferences(x, y);
  const estimate = medianOfSorted(d);
  const alpha = 1 - confidence;
  const ranked = rankPooled(x, y);
  const method = chooseMethod(opts.method ?? 'auto', n1, n2, ranked.ties, inflation);

  let k: number;
  let achieved: number;
  if (method === 'exact') {
    const dist = uDistribution(n1, n2);
    let cum = 0;
    k = 0;
    while (k < dist.length && cum + dist[k]! < (alpha / 2) * (1 - 1e-12)) cum += dist[k++]!;
    // now P(U ≤ k) ≥ α/2 and P(U ≤ k−1) = cum < α/2
    if (k === 0) k = 1;
    achieved = 1 - 2 * cdfAt(dist, k - 1);
  } else {
    const zq = normalQuantile(1 - alpha / 2);
    const s = sigmaU(n1, n2, ranked.tieTerm, inflation);
    k = Math.ceil(mn / 2 - 0.5 - zq * s - 1e-9);
    if (k < 1) k = 1;
    // k−1 pairs below the interval: the (continuity-corrected) normal tail they leave out.
    achieved = s === 0 ? 1 : 1 - 2 * normalCdf((k - 1 - mn / 2 + 0.5) / s);
  }
  if (k > Math.ceil(mn / 2)) k = Math.ceil(mn / 2);
  return { estimate, low: d[k - 1]!, high: d[mn - k]!, confidence, achievedConfidence: clamp01(achieved), method };
}
