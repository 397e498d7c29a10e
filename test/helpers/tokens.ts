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

/**
 * One token per person (name → role), answered as name → token.
 * @example const tokens = await issueTokens(t.db, { oscar: 'operator', alice: 'approver' });
 */
export async function issueTokens<N extends string>(db: Db, people: Record<N, Role>): Promise<Record<N, string>> {
  const tokens = {} as Record<N, string>;
  for (const [name, role] of Object.entries(people) as [N, Role][])
    tokens[name] = (await issueToken(db, name, role)).token;
  return tokens;
}

/**
 * In-process API calls as one of `tokens`' people: JSON in, status and JSON body out.
 * @example const call = apiAs(app, tokens); await call('POST', '/queue', 'oscar', { errata_id: '6100-1' });
 */
export function apiAs<N extends string>(
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  tokens: Record<N, string>,
) {
  return async (method: string, path: string, as: N, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await app.request(`/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${tokens[as]}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: await res.json() };
  };
}
