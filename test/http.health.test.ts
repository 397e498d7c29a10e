import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.ts';
import { AppError } from '../src/errors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { loadMigrations } from '../src/persistence/migrate.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let closedPort: number;
/** A viewer's Authorization header: everything under /api/v1 but the ping needs a token. */
let viewer: Record<string, string>;
beforeAll(async () => {
  t = await createTestDatabase();
  const g = await issueToken(t.db, 'health-viewer', 'viewer');
  viewer = { authorization: `Bearer ${g.token}` };
  // A port that nothing listens on: bind, read the number, close.
  closedPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
});
afterAll(() => t.drop());

describe('GET /api/v1/health', () => {
  it('answers healthy without touching dependencies', async () => {
    const res = await createApp(baseDeps(t.db)).request('/api/v1/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'healthy', version: '0.0.0-test' });
    expect(res.headers.get('x-request-id')).toBeTruthy();
  });

  it('answers 503 shutting_down while stopping', async () => {
    const deps = baseDeps(t.db);
    deps.lifecycle.state = 'stopping';
    const res = await createApp(deps).request('/api/v1/health');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'shutting_down' });
  });
});

describe('GET /api/v1/health/detail', () => {
  it('needs a viewer token (the ping stays open)', async () => {
    const res = await createApp(baseDeps(t.db)).request('/api/v1/health/detail');
    expect(res.status).toBe(401);
  });

  it('reports each component, the schema version and queue counts', async () => {
    const res = await createApp(baseDeps(t.db)).request('/api/v1/health/detail', { headers: viewer });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      status: 'healthy',
      schema_version: loadMigrations().length, // the newest migration of this build
      components: {
        database: 'connected',
        uyuni: 'not configured',
        salt: 'not configured',
        prometheus: 'not configured',
      },
      queue_stats: {},
    });
  });

  it('is degraded when a configured dependency is unreachable, and says why', async () => {
    const deps = baseDeps(t.db, {
      UYUNI_URL: `http://127.0.0.1:${closedPort}`,
      UYUNI_USER: 'u',
      UYUNI_PASSWORD: 'p',
      PROMETHEUS_URL: `http://127.0.0.1:${closedPort}`,
    });
    const res = await createApp(deps).request('/api/v1/health/detail', { headers: viewer });
    const body = (await res.json()) as {
      status: string;
      components: Record<string, string>;
      component_details: Record<string, { detail?: string }>;
    };
    expect(res.status).toBe(200);
    expect(body.status).toBe('degraded');
    expect(body.components).toMatchObject({
      database: 'connected',
      uyuni: 'unreachable',
      prometheus: 'unreachable',
      salt: 'not configured',
    });
    expect(body.component_details.uyuni?.detail).toMatch(/ECONNREFUSED/);
  });
});

describe('error envelope', () => {
  const app = () => {
    const a = createApp(baseDeps(t.db), [
      (api) => {
        api.post('/echo', async (c) => c.json(await c.req.json()));
        api.get('/boom', () => {
          throw new Error('secret internals at /etc/shadow');
        });
        api.get('/conflict', () => {
          throw new AppError(409, 'invalid_transition', 'not now', { state: 'approved' });
        });
      },
    ]);
    return a;
  };

  it('404 for an unknown path (401 without a token: nothing under /api/v1 but the ping is open)', async () => {
    expect((await app().request('/api/v1/nope')).status).toBe(401);
    const res = await app().request('/api/v1/nope', { headers: viewer });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { code: 'not_found', message: 'no route for GET /api/v1/nope', details: null },
    });
  });

  it('405 with Allow for a known path and wrong method', async () => {
    const res = await app().request('/api/v1/health', { method: 'DELETE', headers: viewer });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(await res.json()).toMatchObject({ error: { code: 'method_not_allowed' } });
  });

  it('413 when the body exceeds the limit', async () => {
    const res = await app().request('/api/v1/echo', {
      method: 'POST',
      body: 'x'.repeat(1_100_000),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: 'payload_too_large' } });
  });

  it('an AppError keeps its status, code and details', async () => {
    const res = await app().request('/api/v1/conflict', { headers: viewer });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: { code: 'invalid_transition', message: 'not now', details: { state: 'approved' } },
    });
  });

  it('an unexpected error is a 500 without the message or a stack', async () => {
    const res = await app().request('/api/v1/boom', { headers: viewer });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toMatch(/shadow|at .*\.ts/);
    expect(JSON.parse(text)).toMatchObject({
      error: { code: 'internal_error', details: { request_id: expect.any(String) } },
    });
  });
});
