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

export const TOKEN_PATTERN = /^spm_[A-Za-z0-9_-]{43}$/;

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
