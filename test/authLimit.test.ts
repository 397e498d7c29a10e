/**
 * Failed authentications are counted in PostgreSQL, shared by the replicas (issue 12): unknown
 * bearer tokens per client address on the API, and the dashboard's sign-in limits. Two apps on one
 * database stand for two replicas behind a load balancer; the client address is the socket's.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../src/http/app.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let token: string;

beforeAll(async () => {
  t = await createTestDatabase();
  const g = await issueToken(t.db, 'vera', 'viewer');
  token = g.token;
});
afterAll(async () => {
  await t?.drop();
});

/** A replica: its own app (and limiter) on the shared database. */
const replica = () => createApp(baseDeps(t.db, { API_AUTH_MAX_FAILURES_PER_IP: '3' }), []);
const from = (address: string) => ({
  incoming: { socket: { remoteAddress: address, remotePort: 40000, remoteFamily: 'IPv4' } },
});
const unknownToken = (n: number) => `spm_${String(n).padStart(43, 'q')}`;
async function whoami(app: ReturnType<typeof replica>, address: string, bearer: string) {
  const res = await app.request('/api/v1/whoami', { headers: { authorization: `Bearer ${bearer}` } }, from(address));
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any };
}
const denials = (address: string) =>
  t.db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM audit_log WHERE action = 'authenticate' AND ip_address = ${address}`);

describe('unknown bearer tokens per client address, on every replica', () => {
  it('past the limit (counted over both replicas) an unknown token is 429 without an audit row; a valid token still works', async () => {
    const [a, b] = [replica(), replica()];
    const ip = '192.0.2.10';
    // Two guesses on one replica, the third on the other: the count is shared.
    expect((await whoami(a, ip, unknownToken(1))).status).toBe(401);
    expect((await whoami(a, ip, unknownToken(2))).status).toBe(401);
    expect((await whoami(b, ip, unknownToken(3))).status).toBe(401);
    const refused = await whoami(b, ip, unknownToken(4));
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('too_many_failures');
    expect(Number(refused.retryAfter)).toBeGreaterThan(800);
    // Replica a learns of b's failure at its next one: at most max + (replicas − 1) tries in all.
    expect((await whoami(a, ip, unknownToken(5))).status).toBe(401);
    expect((await whoami(a, ip, unknownToken(6))).status).toBe(429);
    // A malformed one too, before any lookup.
    expect((await whoami(a, ip, 'garbage')).status).toBe(429);
    // Four 401s audited; the 429s wrote nothing.
    expect(await denials(ip)).toBe(4);
    // The valid token from the same address is not locked out; another address is not limited.
    expect((await whoami(a, ip, token)).status).toBe(200);
    expect((await whoami(b, ip, token)).status).toBe(200);
    expect((await whoami(a, '192.0.2.11', unknownToken(7))).status).toBe(401);
  });

  it('a missing token is refused (401) but not counted: a script without a token locks nobody out', async () => {
    const app = replica();
    for (let i = 0; i < 5; i++) {
      const res = await app.request('/api/v1/whoami', {}, from('192.0.2.20'));
      expect(res.status).toBe(401);
    }
    expect((await whoami(app, '192.0.2.20', unknownToken(8))).status).toBe(401);
  });

  it('counted across a restart: a new process (a new app) refuses at once after its first failure', async () => {
    const ip = '192.0.2.30';
    const before = replica();
    for (let i = 0; i < 3; i++) expect((await whoami(before, ip, unknownToken(10 + i))).status).toBe(401);
    const after = replica();
    expect((await whoami(after, ip, unknownToken(20))).status).toBe(401);
    expect((await whoami(after, ip, unknownToken(21))).status).toBe(429);
  });
});
