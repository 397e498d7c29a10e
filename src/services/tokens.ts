/**
 * API tokens: `spm_<43 base64url chars>` (256 random bits) so secret scanners can spot them; only
 * their SHA-256 is stored, with an 8-character display prefix.
 */
import { createHash, randomBytes } from 'node:crypto';

export const ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** viewer < operator < approver < admin */
export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/**
 * Actors the daemon itself writes in the journal and the audit log; no person may be named so
 * (a token or a proxy user called `scheduler` would pass for the system). Migration 0007 keeps
 * the list too (`spm_default_person`).
 */
export const RESERVED_PERSONS: readonly string[] = [
  'anonymous',
  'system',
  'scheduler',
  'auto-queue',
  'sync',
  'policy',
  'probe',
  'migration',
];

/**
 * Whether `person` may name a person: 1–120 characters, no control character and no `:` (the
 * `cli:` / `proxy:` namespaces), not a reserved actor.
 * @example validPerson('alice') // true; validPerson('scheduler') // false
 */
export function validPerson(person: string): boolean {
  return (
    person.trim().length > 0 &&
    person.length <= 120 &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters in a name is the point
    !/[\x00-\x1f\x7f:]/.test(person) &&
    !RESERVED_PERSONS.includes(person)
  );
}

export const TOKEN_PATTERN = /^spm_[A-Za-z0-9_-]{43}$/;

/** `token create` without `--expires-days` / `--no-expiry`: the token expires after this many days. */
export const DEFAULT_TOKEN_EXPIRY_DAYS = 90;

/**
 * Make a new token.
 * @example
 * const { token, hash, prefix } = generateToken(); // show `token` once, store `hash`
 */
export function generateToken(): { token: string; hash: string; prefix: string } {
  const token = `spm_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token), prefix: token.slice(0, 12) };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
