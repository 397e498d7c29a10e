/**
 * One seeded PRNG for everything that needs reproducible randomness (the lab's fleet and noise,
 * the judge's tests and bench, the chaos harnesses): mulberry32, small, fast, deterministic.
 * Never for secrets (tokens use node:crypto).
 */

/** @example const rnd = prng(42); rnd() // 0 ≤ x < 1, the same sequence for the same seed */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from a string (e.g. a minion id): the same name draws the same sequence. */
export function seedOf(text: string): number {
  let a = 0;
  for (let i = 0; i < text.length; i++) a = (Math.imul(a, 31) + text.charCodeAt(i)) >>> 0;
  return a;
}
