/**
 * The dashboard's security at the HTTP level: sign-in by a trusted proxy header (only with
 * TRUST_PROXY), the redirect to sign-in, the CSP and other headers, escaping of every value,
 * CSRF and cross-site refusals, and a bad token.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { createApp } from '../src/http/app.ts';
import { dashboardRoutes } from '../src/http/dashboard/index.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys } = await startTestSystem(t.db));
  const deps = baseDeps(t.db, { TRUST_PROXY: 'true', UI_PROXY_USER_HEADER: 'X-Remote-User', UI_PROXY_ROLE_HEADER: 'X-Remote-Role' });
  app = createApp(deps, [queueRoutes({ ...deps, actors: sys.host, clock: sys.clock, settings: async () => FAST_SETTINGS, testEngine: { available: true, reason: null } })],
    [(root) => dashboardRoutes(deps, root)]);
  await seedErrata(t.db, ['USN-9000-1']);
  await t.db.query(sql.unsafe`UPDATE errata_cache SET synopsis = '<img src=x onerror=alert(1)> "quoted"' WHERE errata_id = 'USN-9000-1'`);
  await sys.host.create({ errataId: 'USN-9000-1', errataVersion: null, targetOs: 'ubuntu', priority: 0, successScore: 70, notes: null, settings: FAST_SETTINGS }, { actor: 'test' });
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

const as = (user: string, role?: string) => ({ 'x-remote-user': user, ...(role ? { 'x-remote-role': role } : {}) });

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
    const cross = await app.request('/ui/approvals/1/approve', { method: 'POST', headers: { ...h, origin: 'http://evil.example', host: 'localhost' }, body: `csrf=${csrf}` });
    expect(cross.status).toBe(403);
    expect(await cross.text()).toContain('cross-site');
    const site = await app.request('/ui/approvals/1/approve', { method: 'POST', headers: { ...h, 'sec-fetch-site': 'cross-site' }, body: `csrf=${csrf}` });
    expect(site.status).toBe(403);
    // Another user's CSRF token is not valid for this one.
    const bobs = /name="csrf" value="([^"]+)"/.exec(await (await app.request('/ui', { headers: as('bob', 'approver') })).text())![1]!;
    expect((await app.request('/ui/approvals/1/approve', { method: 'POST', headers: h, body: `csrf=${bobs}` })).status).toBe(403);
  });

  it('a sign-in with a malformed or unknown token says so and sets no cookie', async () => {
    const r = await app.request('/ui/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=hello' });
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toContain('error=');
    expect(r.headers.get('set-cookie')).toBeNull();
    const u = await app.request('/ui/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=spm_${'A'.repeat(43)}` });
    expect(decodeURIComponent(u.headers.get('location') ?? '')).toContain('unknown, revoked or expired token');
  });

  it('UI_PROXY_USER_HEADER is refused without TRUST_PROXY', () => {
    expect(() => parseConfig({ NODE_ENV: 'test', UI_PROXY_USER_HEADER: 'X-Remote-User' })).toThrow(/UI_PROXY_USER_HEADER: only with TRUST_PROXY=true/);
  });
});
