/**
 * The dashboard's security at the HTTP level: sign-in by a trusted proxy header (only with
 * TRUST_PROXY, only with the proxy's secret or from its address), the redirect to sign-in, the CSP
 * and other headers, escaping of every value, CSRF and cross-site refusals (Origin: null too), a bad
 * token, server-side sessions (random id in the cookie, idle timeout, logout ends them), the sign-in
 * rate limit, the body limit before sign-in, and hostile form input (never a 5xx).
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { createApp } from '../src/http/app.ts';
import { dashboardRoutes } from '../src/http/dashboard/index.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import { startHttpServer } from '../src/http/server.ts';
import { revokeToken } from '../src/persistence/sql/tokens.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;
let approverToken: string;
const PROXY_SECRET = 'proxy-secret-0123456789abcdef0123456789';
const PROXY_ENV = {
  TRUST_PROXY: 'true',
  UI_PROXY_USER_HEADER: 'X-Remote-User',
  UI_PROXY_ROLE_HEADER: 'X-Remote-Role',
  UI_PROXY_SECRET: PROXY_SECRET,
};

function dashboardApp(env: Record<string, string>) {
  const deps = baseDeps(t.db, env);
  return createApp(
    deps,
    [
      queueRoutes({
        ...deps,
        actors: sys.host,
        clock: sys.clock,
        settings: async () => FAST_SETTINGS,
        testEngine: { available: true, reason: null },
      }),
    ],
    [(root) => dashboardRoutes(deps, root)],
  );
}

beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys } = await startTestSystem(t.db));
  app = dashboardApp(PROXY_ENV);
  const g = await issueToken(t.db, 'dash-approver', 'approver');
  approverToken = g.token;
  await seedErrata(t.db, ['USN-9000-1']);
  await t.db.query(
    sql.unsafe`UPDATE errata_cache SET synopsis = '<img src=x onerror=alert(1)> "quoted"' WHERE errata_id = 'USN-9000-1'`,
  );
  await sys.host.create(
    {
      errataId: 'USN-9000-1',
      errataVersion: null,
      targetOs: 'ubuntu',
      priority: 0,
      successScore: 70,
      notes: null,
      settings: FAST_SETTINGS,
    },
    { actor: 'test' },
  );
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

const as = (user: string, role?: string) => ({
  'x-remote-user': user,
  'x-spm-proxy-secret': PROXY_SECRET,
  ...(role ? { 'x-remote-role': role } : {}),
});
const form = { 'content-type': 'application/x-www-form-urlencoded' };

/** Sign in with a token; the session cookie (`spm_session=…`). */
async function signIn(a: ReturnType<typeof createApp>, token: string): Promise<string> {
  const r = await a.request('/ui/login', { method: 'POST', headers: form, body: `token=${token}` });
  expect(r.status).toBe(303);
  expect(r.headers.get('location')).toBe('/ui');
  return (r.headers.get('set-cookie') ?? '').split(';')[0]!;
}

describe('dashboard over HTTP', () => {
  it('without a session or proxy header every page redirects to sign-in', async () => {
    for (const p of ['/ui', '/ui/approvals', '/ui/entries/1', '/ui/inspector/1']) {
      const r = await app.request(p);
      expect(r.status, p).toBe(303);
      expect(r.headers.get('location')).toBe('/ui/login');
    }
    const bad = await app.request('/ui', { headers: { cookie: 'spm_session=spm_' + 'x'.repeat(43) } });
    expect(bad.headers.get('location')).toBe('/ui/login?expired=1');
  });

  it('a trusted proxy header signs in, with the role it names (default viewer)', async () => {
    const a = await (await app.request('/ui', { headers: as('alice', 'approver') })).text();
    expect(a).toContain('proxy:alice (approver)');
    const b = await (await app.request('/ui', { headers: as('bob') })).text();
    expect(b).toContain('proxy:bob (viewer)');
    const c = await (await app.request('/ui', { headers: as('carol', 'root') })).text();
    expect(c).toContain('proxy:carol (viewer)');
  });

  it('sends a CSP without inline script or style, and escapes every value', async () => {
    const r = await app.request('/ui', { headers: as('alice', 'approver') });
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(r.headers.get('content-security-policy')).not.toContain('unsafe-inline');
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    const body = await r.text();
    expect(body).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(body).not.toMatch(/\sstyle=/);
    expect(body).toContain('&lt;img src=x onerror=alert(1)&gt; &quot;quoted&quot;');
    expect(body).not.toContain('<img src=x');
  });

  it('refuses a POST without the CSRF token, with a wrong one, or from another site', async () => {
    const h = { ...as('alice', 'approver'), 'content-type': 'application/x-www-form-urlencoded' };
    const none = await app.request('/ui/approvals/1/approve', { method: 'POST', headers: h, body: '' });
    expect(none.status).toBe(403);
    expect(await none.text()).toContain('CSRF');
    const wrong = await app.request('/ui/approvals/1/approve', { method: 'POST', headers: h, body: 'csrf=nope' });
    expect(wrong.status).toBe(403);
    const page = await (await app.request('/ui', { headers: as('alice', 'approver') })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const cross = await app.request('/ui/approvals/1/approve', {
      method: 'POST',
      headers: { ...h, origin: 'http://evil.example', host: 'localhost' },
      body: `csrf=${csrf}`,
    });
    expect(cross.status).toBe(403);
    expect(await cross.text()).toContain('cross-site');
    const site = await app.request('/ui/approvals/1/approve', {
      method: 'POST',
      headers: { ...h, 'sec-fetch-site': 'cross-site' },
      body: `csrf=${csrf}`,
    });
    expect(site.status).toBe(403);
    // Another user's CSRF token is not valid for this one.
    const bobs = /name="csrf" value="([^"]+)"/.exec(
      await (await app.request('/ui', { headers: as('bob', 'approver') })).text(),
    )![1]!;
    expect(
      (await app.request('/ui/approvals/1/approve', { method: 'POST', headers: h, body: `csrf=${bobs}` })).status,
    ).toBe(403);
  });

  it('a sign-in with a malformed or unknown token says so and sets no cookie', async () => {
    const r = await app.request('/ui/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=hello',
    });
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toContain('error=');
    expect(r.headers.get('set-cookie')).toBeNull();
    const u = await app.request('/ui/login', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=spm_${'A'.repeat(43)}`,
    });
    expect(decodeURIComponent(u.headers.get('location') ?? '')).toContain('unknown, revoked or expired token');
  });

  it('UI_PROXY_USER_HEADER is refused without TRUST_PROXY, and without a proxy secret or trusted CIDRs', () => {
    expect(() =>
      parseConfig({ NODE_ENV: 'test', UI_PROXY_USER_HEADER: 'X-Remote-User', UI_PROXY_SECRET: PROXY_SECRET }),
    ).toThrow(/UI_PROXY_USER_HEADER: only with TRUST_PROXY=true/);
    expect(() => parseConfig({ NODE_ENV: 'test', TRUST_PROXY: 'true', UI_PROXY_USER_HEADER: 'X-Remote-User' })).toThrow(
      /UI_PROXY_USER_HEADER: needs UI_PROXY_SECRET .* and\/or UI_PROXY_TRUSTED_CIDRS/,
    );
    expect(() =>
      parseConfig({
        NODE_ENV: 'test',
        TRUST_PROXY: 'true',
        UI_PROXY_USER_HEADER: 'X-Remote-User',
        UI_PROXY_SECRET: 'short',
      }),
    ).toThrow(/UI_PROXY_SECRET: expected at least 32 characters/);
    expect(() =>
      parseConfig({
        NODE_ENV: 'test',
        TRUST_PROXY: 'true',
        UI_PROXY_USER_HEADER: 'X-Remote-User',
        UI_PROXY_TRUSTED_CIDRS: '10.0.0.0/33',
      }),
    ).toThrow(/UI_PROXY_TRUSTED_CIDRS: expected/);
    expect(
      parseConfig({
        NODE_ENV: 'test',
        TRUST_PROXY: 'true',
        UI_PROXY_USER_HEADER: 'X-Remote-User',
        UI_PROXY_TRUSTED_CIDRS: '10.0.0.0/8, fd00::/64',
      }).uiProxy?.trustedCidrs,
    ).toEqual(['10.0.0.0/8', 'fd00::/64']);
  });
});

describe('proxy sign-in only from the proxy', () => {
  it('forged proxy headers from a direct client (no secret, a wrong one) are refused; with the secret they are accepted', async () => {
    for (const secret of [undefined, 'wrong', `${PROXY_SECRET}x`, PROXY_SECRET.slice(0, -1)]) {
      const r = await app.request('/ui', {
        headers: {
          'x-remote-user': 'mallory',
          'x-remote-role': 'admin',
          ...(secret ? { 'x-spm-proxy-secret': secret } : {}),
        },
      });
      expect(r.status, String(secret)).toBe(403);
      expect(await r.text()).toContain('did not come through the trusted proxy');
    }
    const ok = await app.request('/ui', { headers: as('alice', 'approver') });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('proxy:alice (approver)');
  });

  it('with UI_PROXY_TRUSTED_CIDRS only a peer in the list may sign in (the socket address, not X-Forwarded-For)', async () => {
    for (const [cidrs, want] of [
      ['127.0.0.0/8', 200],
      ['10.0.0.0/8', 403],
    ] as const) {
      const a = dashboardApp({
        TRUST_PROXY: 'true',
        UI_PROXY_USER_HEADER: 'X-Remote-User',
        UI_PROXY_TRUSTED_CIDRS: cidrs,
      });
      const server = await startHttpServer(a, { host: '127.0.0.1', port: 0 });
      try {
        const r = await fetch(`http://127.0.0.1:${server.port}/ui`, {
          headers: { 'x-remote-user': 'carol', 'x-forwarded-for': '10.1.2.3' },
          redirect: 'manual',
        });
        expect(r.status, cidrs).toBe(want);
      } finally {
        await server.close(1000);
      }
    }
    // No socket at all (in-process) is never a trusted peer.
    const inProcess = dashboardApp({
      TRUST_PROXY: 'true',
      UI_PROXY_USER_HEADER: 'X-Remote-User',
      UI_PROXY_TRUSTED_CIDRS: '127.0.0.0/8',
    });
    expect((await inProcess.request('/ui', { headers: { 'x-remote-user': 'carol' } })).status).toBe(403);
  });
});

describe('server-side sessions', () => {
  it('the cookie holds a random session id, never the token; logout ends the session server-side', async () => {
    const cookie = await signIn(app, approverToken);
    expect(cookie).toMatch(/^spm_session=[A-Za-z0-9_-]{43}$/);
    expect(cookie).not.toContain(approverToken);
    const page = await app.request('/ui', { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('dash-approver (approver)');
    expect(html).not.toContain(approverToken);
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    const out = await app.request('/ui/logout', { method: 'POST', headers: { ...form, cookie }, body: `csrf=${csrf}` });
    expect(out.status).toBe(303);
    // The old cookie, replayed after logout, is no session any more.
    const again = await app.request('/ui', { headers: { cookie } });
    expect(again.status).toBe(303);
    expect(again.headers.get('location')).toBe('/ui/login?expired=1');
  });

  it('a session idle longer than UI_SESSION_IDLE_MINUTES ends; the live refreshes do not keep it alive', async () => {
    const a = dashboardApp({ UI_SESSION_IDLE_MINUTES: '30' });
    const cookie = await signIn(a, approverToken);
    const t0 = Date.now();
    const now = vi.spyOn(Date, 'now');
    try {
      now.mockReturnValue(t0 + 20 * 60_000);
      expect((await a.request('/ui/live/counts', { headers: { cookie } })).status).toBe(200);
      now.mockReturnValue(t0 + 29 * 60_000);
      expect((await a.request('/ui', { headers: { cookie } })).status).toBe(200); // a page view: active again
      now.mockReturnValue(t0 + 58 * 60_000);
      expect((await a.request('/ui/live/counts', { headers: { cookie } })).status).toBe(200);
      now.mockReturnValue(t0 + 60 * 60_000); // 31 min after the last page view
      const r = await a.request('/ui', { headers: { cookie } });
      expect(r.status).toBe(303);
      expect(r.headers.get('location')).toBe('/ui/login?expired=1');
    } finally {
      now.mockRestore();
    }
  });

  it('sessions are rows every replica shares, holding neither the id nor the token; revoking the token ends them', async () => {
    const replicaA = dashboardApp({});
    const replicaB = dashboardApp({});
    const g = await issueToken(t.db, 'two-replicas', 'approver');
    const row = g.row;
    const cookie = await signIn(replicaA, g.token);
    const id = cookie.replace('spm_session=', '');
    // Signed in on A, a page and a form on B: the session and its CSRF token are not per process.
    const page = await replicaB.request('/ui/approvals', { headers: { cookie } });
    expect(page.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    const out = await replicaA.request('/ui/logout', {
      method: 'POST',
      headers: { ...form, cookie },
      body: `csrf=${csrf}`,
    });
    expect(out.headers.get('location')).toBe('/ui/login');
    expect((await replicaB.request('/ui', { headers: { cookie } })).headers.get('location')).toBe(
      '/ui/login?expired=1',
    );
    // A row opens nothing without the cookie: neither the id nor the token is in it.
    const again = await signIn(replicaB, g.token);
    const dump = await t.db.oneFirst(
      sql.type(
        z.object({ d: z.string() }),
      )`SELECT string_agg(s::text || encode(s.token_sealed, 'escape'), '|') AS d FROM ui_sessions s`,
    );
    for (const secret of [id, again.replace('spm_session=', ''), g.token, g.token.slice(4)])
      expect(dump).not.toContain(secret);
    // Revoking the token deletes its sessions at once (a trigger), on every replica.
    const before = await t.db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM ui_sessions WHERE token_id = ${row.id}`,
    );
    expect(before).toBe(1);
    await revokeToken(t.db, String(row.id));
    expect(
      await t.db.oneFirst(
        sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM ui_sessions WHERE token_id = ${row.id}`,
      ),
    ).toBe(0);
    expect((await replicaA.request('/ui', { headers: { cookie: again } })).headers.get('location')).toBe(
      '/ui/login?expired=1',
    );
  });

  it('a forged or unknown session id is no session', async () => {
    const r = await app.request('/ui', { headers: { cookie: `spm_session=${'A'.repeat(43)}` } });
    expect(r.headers.get('location')).toBe('/ui/login?expired=1');
    // The API token itself in the cookie (the old scheme) does not sign anyone in.
    const t2 = await app.request('/ui', { headers: { cookie: `spm_session=${approverToken}` } });
    expect(t2.headers.get('location')).toBe('/ui/login?expired=1');
  });
});

describe('sign-in rate limit', () => {
  it('after 5 failures for one token prefix: 429 with Retry-After, even with the right token', async () => {
    const a = dashboardApp({});
    const g = await issueToken(t.db, 'target', 'viewer');
    const guess = (n: number) => `${g.token.slice(0, 12)}${String(n).padStart(43 - 8, 'x')}`;
    for (let i = 0; i < 5; i++) {
      const r = await a.request('/ui/login', { method: 'POST', headers: form, body: `token=${guess(i)}` });
      expect(decodeURIComponent(r.headers.get('location') ?? '')).toContain('unknown, revoked or expired token');
    }
    const locked = await a.request('/ui/login', { method: 'POST', headers: form, body: `token=${g.token}` });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(800);
    // Another account from the same client is not locked by these five.
    expect(await signIn(a, approverToken)).toMatch(/^spm_session=/);
  });

  it('the counts are shared by the replicas: failures spread over two of them lock the token on both', async () => {
    const [a, b] = [dashboardApp({}), dashboardApp({})];
    const g = await issueToken(t.db, 'spread', 'viewer');
    const guess = (n: number) => `${g.token.slice(0, 12)}${String(n).padStart(43 - 8, 'y')}`;
    for (let i = 0; i < 5; i++) {
      const r = await (i < 3 ? a : b).request('/ui/login', {
        method: 'POST',
        headers: form,
        body: `token=${guess(i)}`,
      });
      expect(decodeURIComponent(r.headers.get('location') ?? '')).toContain('unknown, revoked or expired token');
    }
    for (const replica of [a, b, dashboardApp({})]) {
      const locked = await replica.request('/ui/login', { method: 'POST', headers: form, body: `token=${g.token}` });
      expect(locked.status).toBe(429);
    }
  });

  it('after UI_LOGIN_MAX_FAILURES_PER_IP failures from one client: 429 before the body is read', async () => {
    const a = dashboardApp({ UI_LOGIN_MAX_FAILURES_PER_IP: '3' });
    for (let i = 0; i < 3; i++) await a.request('/ui/login', { method: 'POST', headers: form, body: 'token=nope' });
    const r = await a.request('/ui/login', { method: 'POST', headers: form, body: `token=${approverToken}` });
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});

describe('hostile input on the dashboard: 4xx, never 5xx', () => {
  it('Origin: null on a form POST is refused as cross-site (403), on sign-in too', async () => {
    const page = await (await app.request('/ui', { headers: as('alice', 'approver') })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    for (const origin of ['null', 'not a url', 'http://[::1']) {
      const r = await app.request('/ui/approvals/1/approve', {
        method: 'POST',
        headers: { ...as('alice', 'approver'), ...form, origin, host: 'localhost' },
        body: `csrf=${csrf}`,
      });
      expect(r.status, origin).toBe(403);
    }
    expect(
      (
        await app.request('/ui/login', {
          method: 'POST',
          headers: { ...form, origin: 'null', host: 'localhost' },
          body: 'token=x',
        })
      ).status,
    ).toBe(403);
  });

  it('snooze until=foo, a NUL in the reason, a CR/LF in back: 4xx or a redirect with the error', async () => {
    const page = await (await app.request('/ui', { headers: as('alice', 'approver') })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)![1]!;
    const post = (body: string) =>
      app.request('/ui/approvals/1/snooze', {
        method: 'POST',
        headers: { ...as('alice', 'approver'), ...form },
        body: `csrf=${csrf}&${body}`,
      });
    const foo = await post('reason=later&until=foo');
    expect(foo.status).toBe(303);
    expect(decodeURIComponent(foo.headers.get('location') ?? '')).toContain('until: expected a date (YYYY-MM-DD)');
    const nul = await post('reason=a%00b&until=2030-01-01');
    expect(nul.status).toBe(400);
    expect(await nul.text()).toContain('form.reason: contains a NUL byte');
    const crlf = await post('reason=x&until=2030-01-01&back=/ui%0D%0ASet-Cookie:%20a=b');
    expect(crlf.status).toBe(303);
    expect(crlf.headers.get('location')).toMatch(/^\/ui\/entries\/1\?/);
    const multipart = await app.request('/ui/approvals/1/approve', {
      method: 'POST',
      headers: { ...as('alice', 'approver'), 'content-type': 'multipart/form-data; boundary=zz' },
      body: 'garbage',
    });
    expect(multipart.status).toBeLessThan(500);
  });

  it('a NUL or an undecodable escape in the path or query is a 400 naming it', async () => {
    const q = await app.request('/ui?q=%00', { headers: as('alice', 'approver') });
    expect(q.status).toBe(400);
    expect(await q.text()).toContain('query.q: contains a NUL byte');
    expect((await app.request('/ui/entries/%ED%A0%80', { headers: as('alice') })).status).toBe(400);
  });

  it('the body limit applies to /ui/login before sign-in: 413 and the connection is closed', async () => {
    const big = `token=${'x'.repeat(1_100_000)}`;
    const r = await app.request('/ui/login', { method: 'POST', headers: form, body: big });
    expect(r.status).toBe(413);
    expect(r.headers.get('connection')).toBe('close');
    const chunked = new ReadableStream<Uint8Array>({
      pull(ctl) {
        ctl.enqueue(new Uint8Array(64 * 1024).fill(120));
      },
    });
    const s = await app.request('/ui/login', {
      method: 'POST',
      headers: form,
      body: chunked,
      duplex: 'half',
    } as RequestInit);
    expect(s.status).toBe(413);
  });
});
