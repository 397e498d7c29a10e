/**
 * Effect keys: the idempotency key of one effect run, `entry:attempt:step[#round]`.
 *
 * - `entry`: the queue entry id;
 * - `attempt`: the test attempt (`3`) or, for production steps, the production attempt with a `p`
 *   (`p2`), so a production step never shares a key with a test step of the same number;
 * - `step`: the machine step (`apply`, `deploy_wave_1_plan0`, …);
 * - `#round`: the operator-retry round from needs_attention, when > 0, so a retried step runs again
 *   instead of returning the failure recorded under its old key.
 *
 * The key is written into external systems (snapper descriptions, notification keys, rollback rows)
 * and persisted snapshots, so its format is part of the upgrade contract: this is the only module
 * that builds or reads it.
 */

export interface EffectKeyParts {
  entryId: number;
  /** Test attempt, or production attempt when `production` is true. */
  attempt: number;
  production: boolean;
  step: string;
  /** Operator retry round; 0 = none. */
  round: number;
}

const KEY = /^(\d+):(p?)(\d+):([^#]+)(?:#(\d+))?$/;

/** Format a key. @example formatEffectKey({ entryId: 7, attempt: 1, production: false, step: 'apply', round: 0 }) // '7:1:apply' */
export function formatEffectKey(p: EffectKeyParts): string {
  return `${p.entryId}:${p.production ? 'p' : ''}${p.attempt}:${p.step}${p.round > 0 ? `#${p.round}` : ''}`;
}

/** Parse a key; null when it is not an effect key. */
export function parseEffectKey(key: string): EffectKeyParts | null {
  const m = KEY.exec(key);
  if (!m) return null;
  return {
    entryId: Number(m[1]),
    production: m[2] === 'p',
    attempt: Number(m[3]),
    step: m[4]!,
    round: m[5] ? Number(m[5]) : 0,
  };
}

/** The step part of a key (for the ledger's `step` column); the key itself when it is not one. */
export function stepOfEffectKey(key: string): string {
  const p = parseEffectKey(key);
  return p ? `${p.step}${p.round > 0 ? `#${p.round}` : ''}` : key;
}

/**
 * The prefix every key of one step family shares within one attempt, whatever its round:
 * `7:1:apply` matches `7:1:apply` and `7:1:apply#2`. For SQL `LIKE` use {@link effectKeyLikePattern}.
 */
export function effectKeyPrefix(entryId: number, attempt: number, production: boolean, step: string): string {
  return `${entryId}:${production ? 'p' : ''}${attempt}:${step}`;
}

/** A `LIKE` pattern for every round of one step of one attempt (underscores in the step escaped). */
export function effectKeyLikePattern(entryId: number, attempt: number, production: boolean, step: string): string {
  return `${effectKeyPrefix(entryId, attempt, production, step).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The key that identifies one production attempt's deployment plan family (`7:p2`). */
export function productionAttemptKey(entryId: number, attempt: number): string {
  return `${entryId}:p${attempt}`;
}
