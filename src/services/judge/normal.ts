/** The standard normal distribution (pure): survival function, CDF and quantile, for the rank tests in statistics.ts. */

/* ------------------------------------------------------------------ normal distribution */

const SQRT2PI = Math.sqrt(2 * Math.PI);

/** Standard normal density. */
function phi(x: number): number {
  return Math.exp(-0.5 * x * x) / SQRT2PI;
}

/**
 * Upper tail Q(x) = P(Z > x) to near double precision: Marsaglia's series for |x| < 3 (all terms
 * positive, no cancellation), the Laplace continued fraction beyond (G. Marsaglia, "Evaluating the
 * Normal Distribution", J. Stat. Software 11(4), 2004).
 *
 * @example normalSf(1.959963984540054) // 0.025
 */
export function normalSf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return 0;
  if (x === -Infinity) return 1;
  if (Math.abs(x) < 3) {
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let i = 3; Math.abs(term) > 1e-17 * Math.abs(sum) + 1e-300; i += 2) {
      term *= x2 / i;
      sum += term;
    }
    return 0.5 - phi(x) * sum;
  }
  if (x < 0) return 1 - normalSf(-x);
  // Q(x) = φ(x) / (x + 1/(x + 2/(x + 3/(x + …)))), evaluated from the tail; 100 levels are plenty for x ≥ 3.
  let cf = x;
  for (let k = 100; k >= 1; k--) cf = x + k / cf;
  return phi(x) / cf;
}

/** Lower tail Φ(x). */
export function normalCdf(x: number): number {
  return normalSf(-x);
}

/**
 * Quantile of the standard normal: bisection to bracket, Newton to polish, on `normalCdf`.
 *
 * @example normalQuantile(0.975) // 1.959963984540054
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    return NaN;
  }
  if (p === 0.5) return 0;
  if (p > 0.5) return -normalQuantile(1 - p);
  let lo = -40;
  let hi = 0;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  let z = (lo + hi) / 2;
  for (let i = 0; i < 3; i++) {
    const d = phi(z);
    if (d === 0) break;
    z -= (normalCdf(z) - p) / d;
  }
  return z;
}
