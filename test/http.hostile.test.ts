/**
 * Hostile input on the API: NUL bytes and lone surrogates anywhere (query, path, body values and
 * keys) are a 400 naming the field and change nothing; numbers beyond what the database stores are a
 * 400; `Origin: null` is harmless; the body limit cuts a 2 GB upload at the limit (413, connection
 * closed) on every route; no answer carries a stack trace. Token use is recorded without an UPDATE
 * per request; the notification list hides webhook URLs below admin.
 */
import { request as httpRequest } from 'node:http';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../src/http/app.ts';
import { generateFleet } from '../src/lab/fleet.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { dashboardRoutes } from '../src/http/dashboard/index.ts';
import { deploymentRoutes } from '../src/http/routes/deployments.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import { riskProfileRoutes } from '../src/http/routes/riskProfile.ts';
import { startHttpServer, type HttpServer } from '../src/http/server.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { flushTokenUse } from '../src/persistence/sql/tokenUse.ts';
import { type Role } from '../src/services/tokens.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;
let server: HttpServer;
const tokens = {} as Record<Role, string>;
const tokenIds = {} as Record<Role, number>;
const count = z.object({ n: z.number() });

beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys } = await startTestSystem(t.db));
  const deps = baseDeps(t.db);
  app = createApp(
    deps,
    [
      queueRoutes({
        ...deps,
        actors: sys.host,
        clock: sys.clock,
        settings: async () => FAST_SETTINGS,
        testEngine: { available: true, reason: null },
      }),
      deploymentRoutes({ ...deps, actors: sys.host }),
      riskProfileRoutes({ ...deps, uyuni: undefined }),
    ],
    [(root) => dashboardRoutes(deps, root)],
  );
  server = await startHttpServer(app, { host: '127.0.0.1', port: 0 });
  for (const role of ['viewer', 'operator', 'approver', 'admin'] as Role[]) {
    const g = await issueToken(t.db, `${role}-user`, role);
    const row = g.row;
    tokens[role] = g.token;
    tokenIds[role] = row.id;
  }
  await seedErrata(t.db, ['USN-8000-1', 'USN-8001-1']);
});
afterAll(async () => {
  await server.close(1000);
  await sys.stop();
  await t.drop();
});

function call(
  method: string,
  path: string,
  opts: { role?: Role; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.role) headers.authorization = `Bearer ${tokens[opts.role]}`;
  if (opts.body !== undefined || opts.raw !== undefined) headers['content-type'] ??= 'application/json';
  const body = opts.raw !== undefined ? opts.raw : opts.body !== undefined ? JSON.stringify(opts.body) : undefined;
  return app.request(`/api/v1${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
}
const mutableState = () =>
  t.db.oneFirst(sql.type(z.object({ d: z.string() }))`
    SELECT md5(coalesce((SELECT string_agg(q::text, '|' ORDER BY id) FROM patch_test_queue q), '')
      || coalesce((SELECT string_agg(j::text, '|' ORDER BY queue_id, seq) FROM patch_transitions j), '')
      || coalesce((SELECT string_agg(r::text, '|' ORDER BY errata_id) FROM patch_risk_profile r), '')) AS d`);

describe('NUL bytes and lone surrogates: 400 naming the field, nothing changed', () => {
  it('GET /queue?q=%00 and other query values and keys', async () => {
    const r = await call('GET', '/queue?q=%00', { role: 'viewer' });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({
      error: { code: 'invalid_text', message: 'query.q: contains a NUL byte', details: [{ path: 'query.q' }] },
    });
    expect((await call('GET', '/queue?status=queued&status=%00', { role: 'viewer' })).status).toBe(400);
    expect((await call('GET', '/queue?a%00b=1', { role: 'viewer' })).status).toBe(400);
    expect((await call('GET', '/deployments?errata_id=x%00', { role: 'viewer' })).status).toBe(400);
  });

  it('a NUL or a lone surrogate in notes, reason, errata ids or keys of a JSON body', async () => {
    const before = await mutableState();
    const cases: [string, string, unknown, string][] = [
      ['POST', '/queue', { errata_id: 'USN-8000-1', notes: 'a\u0000b' }, 'notes'],
      ['POST', '/queue', { errata_ids: ['USN-8000-1', 'USN-\u0000'] }, 'errata_ids.1'],
      ['POST', '/queue', { errata_id: 'USN-8000-1', notes: 'lone \ud800 surrogate' }, 'notes'],
      ['POST', '/queue', { errata_id: 'USN-8000-1', ['no\u0000te']: 'x' }, 'no\u0000te'],
      ['POST', '/queue/1/mark-failed', { reason: 'x\u0000' }, 'reason'],
      ['POST', '/approvals/batch', { items: [{ id: 1, action: 'reject', reason: '\udfff' }] }, 'items.0.reason'],
      ['POST', '/risk-profile/calculate', { errata_ids: ['\u0000'] }, 'errata_ids.0'],
    ];
    for (const [method, path, body, field] of cases) {
      const r = await call(method, path, { role: 'admin', body });
      expect(r.status, `${path} ${field}`).toBe(400);
      const e = ((await r.json()) as { error: { code: string; details: { path: string }[] } }).error;
      expect(e.code).toBe('invalid_text');
      expect(e.details[0]?.path).toBe(field);
    }
    // The JSON text itself, with \u0000 escapes, as a client would send it.
    const raw = await call('POST', '/queue', { role: 'admin', raw: '{"errata_id":"USN-8000-1","notes":"\\u0000"}' });
    expect(raw.status).toBe(400);
    // With an Idempotency-Key the refusal is stored and replayed (no 500 from storing it).
    const key = { 'idempotency-key': 'nul-1' };
    const first = await call('POST', '/queue', { role: 'admin', raw: '{"notes":"\\u0000', headers: key });
    expect(first.status).toBe(400);
    expect((await call('POST', '/queue', { role: 'admin', raw: '{"notes":"\\u0000', headers: key })).status).toBe(400);
    expect(await mutableState()).toBe(before);
  });

  it('a NUL or an undecodable escape in a path parameter', async () => {
    const r = await call('GET', '/risk-profile/USN%00', { role: 'viewer' });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({ error: { code: 'invalid_text', details: [{ path: 'errata_id' }] } });
    expect((await call('GET', '/risk-profile/%ED%A0%80', { role: 'viewer' })).status).toBe(400);
    expect((await call('GET', '/risk-profile/%E0%A4%A', { role: 'viewer' })).status).toBe(400);
    expect((await call('POST', '/queue/%00/retry', { role: 'admin', body: {} })).status).toBe(400);
  });
});

describe('numbers, types and headers that used to reach the database', () => {
  it('ids and system ids beyond what PostgreSQL stores are a 400, not a 500', async () => {
    expect((await call('GET', '/queue/99999999999999999', { role: 'viewer' })).status).toBe(400);
    expect((await call('GET', '/queue/9007199254740993', { role: 'viewer' })).status).toBe(400);
    expect(
      (await call('POST', '/queue/1/force-rollback', { role: 'admin', body: { reason: 'x', systems: [2 ** 31] } }))
        .status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/rollback', {
          role: 'admin',
          body: { deployment_id: 1, type: 'package', reason: 'x', systems: [2 ** 40] },
        })
      ).status,
    ).toBe(400);
    expect(
      (await call('POST', '/tests/start', { role: 'admin', body: { test_system: { id: 2 ** 31, name: 'x' } } })).status,
    ).toBe(400);
    expect(
      (await call('POST', '/queue', { role: 'admin', raw: '{"errata_id":"USN-8000-1","priority":1e400}' })).status,
    ).toBe(400);
    expect((await call('GET', '/queue?limit=1e400', { role: 'viewer' })).status).toBe(400);
  });

  it('deeply nested and huge JSON bodies are refused without a 5xx', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    expect((await call('POST', '/queue', { role: 'admin', raw: deep })).status).toBe(400);
    const wide = JSON.stringify({ errata_ids: Array.from({ length: 50_000 }, (_, i) => `E-${i}`) });
    expect((await call('POST', '/queue', { role: 'admin', raw: wide })).status).toBe(400);
  });

  it('Origin: null and other odd headers are harmless', async () => {
    const r = await call('GET', '/queue', {
      role: 'viewer',
      headers: { origin: 'null', 'sec-fetch-site': 'cross-site', 'x-forwarded-for': 'garbage' },
    });
    expect(r.status).toBe(200);
    const p = await call('POST', '/queue', {
      role: 'operator',
      body: { errata_id: 'nope' },
      headers: { origin: 'null' },
    });
    expect(p.status).toBeLessThan(500);
  });

  it('an answer never carries a stack trace', async () => {
    for (const [path, raw] of [
      ['/queue', '{'],
      ['/queue', '{"errata_id":'],
      ['/approvals/batch', '[]'],
    ] as const) {
      const text = await (await call('POST', path, { role: 'admin', raw })).text();
      expect(text).not.toMatch(/\n\s+at |\.ts:\d+|node:internal/);
    }
  });
});

/** Send `size` bytes (never buffered) to `path`; the status, and how much the server took before it cut. */
function bigUpload(path: string, size: number, chunked: boolean): Promise<{ status: number | null; sent: number }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    let sent = 0;
    let status: number | null = null;
    let done = false;
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (!chunked) headers['content-length'] = String(size);
    const req = httpRequest({ host: '127.0.0.1', port: server.port, method: 'POST', path, headers });
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ status, sent });
    };
    req.on('response', (res) => {
      status = res.statusCode ?? null;
      res.resume();
      res.on('end', () => setTimeout(finish, 200));
    });
    req.on('error', finish);
    req.on('close', finish);
    const pump = () => {
      while (!done && sent < size) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      if (!done) req.end();
    };
    pump();
  });
}

describe('body limit on every route', () => {
  it('a 2 GB POST to /ui/login (before sign-in) or an API route is cut at the limit with 413', async () => {
    for (const path of ['/ui/login', '/api/v1/queue']) {
      for (const chunked of [false, true]) {
        const r = await bigUpload(path, 2 * 1024 ** 3, chunked);
        expect(r.status, `${path} chunked=${chunked}`).toBe(413);
        // The server stopped reading long before 2 GB (a few MB in flight at most).
        expect(r.sent, `${path} chunked=${chunked}`).toBeLessThan(200 * 1024 ** 2);
      }
    }
  }, 60_000);
});

describe('secrets and token use', () => {
  it('token use is recorded without an UPDATE per request, written at the flush', async () => {
    await t.db.query(sql.unsafe`CREATE TABLE token_updates (n int NOT NULL)`);
    await t.db.query(sql.unsafe`INSERT INTO token_updates VALUES (0)`);
    await t.db.query(
      sql.unsafe`CREATE FUNCTION count_token_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE token_updates SET n = n + 1; RETURN NEW; END $$`,
    );
    await t.db.query(
      sql.unsafe`CREATE TRIGGER count_token_update AFTER UPDATE ON api_tokens FOR EACH ROW EXECUTE FUNCTION count_token_update()`,
    );
    await flushTokenUse(t.db);
    await t.db.query(sql.unsafe`UPDATE token_updates SET n = 0`);
    for (let i = 0; i < 50; i++) expect((await call('GET', '/queue/stats', { role: 'viewer' })).status).toBe(200);
    expect(await t.db.oneFirst(sql.type(count)`SELECT n FROM token_updates`)).toBe(0);
    expect(await flushTokenUse(t.db)).toBe(1);
    expect(await t.db.oneFirst(sql.type(count)`SELECT n FROM token_updates`)).toBe(1);
    const used = await t.db.oneFirst(
      sql.type(
        z.object({ at: z.number().nullable() }),
      )`SELECT last_used_at AS at FROM api_tokens WHERE id = ${tokenIds.viewer}`,
    );
    expect(used).toBeGreaterThan(Date.now() - 60_000);
    await t.db.query(sql.unsafe`DROP TRIGGER count_token_update ON api_tokens`);
  });

  it('GET /notifications hides webhook URLs (and errors quoting them) below admin', async () => {
    const hook = 'https://hooks.slack.example/services/T000/B000/very-secret-path';
    await t.db.query(sql.unsafe`
      INSERT INTO orchestrator_notifications (type, recipient, channel, subject, body, idempotency_key, status, error_message)
      VALUES ('test', ${hook}, 'webhook', 's', 'b', 'k-hook', 'failed', ${`Request failed with status code 500: POST ${hook}`}),
             ('test', 'ops@example.test', 'email', 's', 'b', 'k-mail', 'sent', NULL)`);
    for (const role of ['viewer', 'operator', 'approver'] as Role[]) {
      const text = await (await call('GET', '/notifications', { role })).text();
      expect(text, role).not.toContain('very-secret-path');
      expect(text).toContain('https://hooks.slack.example/[redacted]');
      expect(text).toContain('ops@example.test');
    }
    expect(await (await call('GET', '/notifications', { role: 'admin' })).text()).toContain(hook);
  });
});

describe('POST /risk-profile/calculate with UYUNI', () => {
  it('an errata UYUNI does not know is without packages (200), not a 500; UYUNI down is 503 uyuni_unavailable', async () => {
    const lab = new LabUyuni(
      generateFleet({
        seed: 3,
        groups: [{ name: 'test-ubuntu-x', os: 'ubuntu', systems: 1 }],
        errata: { ubuntu: 2, debian: 0, rhel: 0 },
        relevantPerSystem: 'all',
      }),
    );
    const url = await lab.serve();
    try {
      const known = lab.fleet.errata[0]!.advisoryName;
      await seedErrata(t.db, [known]);
      const cfg = { url, user: 'admin', password: 'admin', verifySsl: true, timeoutMs: 5000, syncWorkers: 2 };
      const withUyuni = (uyuni: UyuniClient) => {
        const deps = baseDeps(t.db);
        return createApp(deps, [riskProfileRoutes({ ...deps, uyuni })]);
      };
      const a = withUyuni(new UyuniClient(cfg));
      const r = await a.request('/api/v1/risk-profile/calculate', {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({ errata_ids: ['USN-8000-1', known] }),
      });
      expect(r.status).toBe(200);
      const body = (await r.json()) as { calculated: { errata_id: string }[]; without_packages: string[] };
      expect(body.calculated.map((x) => x.errata_id)).toEqual([known]);
      expect(body.without_packages).toEqual(['USN-8000-1']);
      const down = withUyuni(new UyuniClient({ ...cfg, url: 'http://127.0.0.1:9' }));
      await t.db.query(sql.unsafe`UPDATE errata_cache SET packages = NULL WHERE errata_id = ${known}`);
      const d = await down.request('/api/v1/risk-profile/calculate', {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({ errata_ids: [known] }),
      });
      expect(d.status).toBe(503);
      expect(((await d.json()) as { error: { code: string } }).error.code).toBe('uyuni_unavailable');
    } finally {
      await lab.close();
    }
  });
});
