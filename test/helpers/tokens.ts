/**
 * API tokens for tests: generated as `token create` does (only the hash stored) and inserted,
 * answering the token itself and its row.
 */
import type { Db } from '../../src/persistence/db.ts';
import { insertToken } from '../../src/persistence/sql/tokens.ts';
import { generateToken, type Role } from '../../src/services/tokens.ts';

/**
 * @example const { token } = await issueToken(t.db, 'alice', 'approver');
 */
export async function issueToken(
  db: Db,
  name: string,
  role: Role,
  o: { person?: string; expiresInDays?: number | null } = {},
): Promise<{ token: string; prefix: string; row: Awaited<ReturnType<typeof insertToken>> }> {
  const g = generateToken();
  const row = await insertToken(db, {
    name,
    ...(o.person !== undefined ? { person: o.person } : {}),
    prefix: g.prefix,
    hash: g.hash,
    role,
    createdBy: 'test',
    expiresInDays: o.expiresInDays ?? null,
  });
  return { token: g.token, prefix: g.prefix, row };
}
