/**
 * T12, secret canaries: every secret the daemon is configured with — the database password, the
 * UYUNI and Salt passwords, the SMTP password, the webhook HMAC secret, the NVD API key, the
 * /metrics token, the proxy secret — is a unique canary, and so are the API tokens, the dashboard
 * session id and the webhook URL. A short end-to-end run goes through the real daemon (debug logs):
 * the startup sync from a lab UYUNI and NVD enrichment, API calls of every role (errors and
 * hostile input included), a test and an approval through the fake world, dashboard pages over a
 * token session and over the proxy, a notification by SMTP AUTH and by signed webhook (the first
 * delivery of each refused), a sync whose login fails, a restart. Then: 0 canaries in the logs, in
 * the database rows (the webhook URL excepted where it must be stored: the notification settings
 * and the outbox's recipient), in every answer to a non-admin, in the notifications delivered; and
 * no stack trace in any answer.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { sql } from 'slonik';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { generateFleet, type FleetSpec } from '../src/lab/fleet.ts';
import { cvssMetric, LabNvd } from '../src/lab/nvd.ts';
import { WebhookSink } from '../src/lab/sinks.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { createDb, type Db } from '../src/persistence/db.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { enqueueAlert } from '../src/services/alerts.ts';
import { ROLES, type Role } from '../src/services/tokens.ts';
import { spawnDaemon, type DaemonProc } from './helpers/daemon.ts';
import { adminUrl, createTestDatabase } from './helpers/db.ts';
import { waitUntil } from './helpers/proc.ts';
import { issueToken } from './helpers/tokens.ts';

const canary = (what: string) => `CANARY${what}${randomBytes(16).toString('hex')}`;
const C = {
  dbPassword: canary('db'),
  uyuniPassword: canary('uyuni'),
  saltPassword: canary('salt'),
  smtpPassword: canary('smtp'),
  webhookSecret: canary('hmac'),
  nvdApiKey: canary('nvd'),
  metricsToken: canary('metrics'),
  proxySecret: canary('proxy'),
  webhookPath: canary('hookpath'),
};
const FLEET: FleetSpec = {
  seed: 21,
  groups: [
    { name: 'test-ubuntu-canary', os: 'ubuntu', systems: 1 },
    { name: 'prod-ubuntu-canary', os: 'ubuntu', systems: 2 },
  ],
  errata: { ubuntu: 6, debian: 0, rhel: 0 },
  relevantPerSystem: 'all',
};

const world = new FakeWorld({ waves: 2 });
const uyuni = new LabUyuni(generateFleet(FLEET), { user: 'canary-user', password: C.uyuniPassword });
const nvd = new LabNvd();
const hook = new WebhookSink(C.webhookSecret);
const mails: string[] = [];
const smtpAuths: { user: string; ok: boolean }[] = [];
let failMail = 1;
const smtp = new SMTPServer({
  disabledCommands: ['STARTTLS'],
  allowInsecureAuth: true,
  logger: false,
  onAuth: (auth, _s, cb) => {
    const ok = auth.username === 'spm-mailer' && auth.password === C.smtpPassword;
    smtpAuths.push({ user: auth.username ?? '', ok });
    cb(ok ? null : new Error('Invalid username or password'), ok ? { user: auth.username } : undefined);
  },
  onData: (stream, _s, cb) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      if (failMail-- > 0)
        return cb(Object.assign(new Error('Temporary local problem, try again later'), { responseCode: 451 }));
      mails.push(Buffer.concat(chunks).toString('utf8'));
      cb();
    });
  },
});

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let dbUrl: string;
let role: string;
let daemon: DaemonProc;
const logs: string[] = [];
const tokens = {} as Record<Role, string>;
/** Every answer to a non-admin (status, headers, body), and every answer at all (for stack traces). */
const nonAdminAnswers: string[] = [];
const allAnswers: string[] = [];
let webhookUrl = '';
let sessionId = '';
let env: Record<string, string>;

async function startDaemon() {
  daemon = await spawnDaemon({ dbUrl, worldUrl: servedWorld, instanceId: 'canary', env });
}
let servedWorld = '';
async function stopDaemon() {
  daemon.child.proc.kill('SIGTERM');
  await daemon.child.exited;
  logs.push(daemon.child.stdout(), daemon.child.stderr());
}

async function call(
  who: Role | 'none' | { bearer: string },
  method: string,
  path: string,
  o: { body?: unknown; raw?: string; headers?: Record<string, string>; root?: boolean } = {},
) {
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (typeof who === 'object') headers.authorization = `Bearer ${who.bearer}`;
  else if (who !== 'none') headers.authorization = `Bearer ${tokens[who]}`;
  if (o.body !== undefined || o.raw !== undefined) headers['content-type'] ??= 'application/json';
  const url = `${o.root ? `http://127.0.0.1:${daemon.port}` : daemon.base}${path}`;
  const res = await fetch(url, {
    method,
    headers,
    redirect: 'manual',
    ...(o.raw !== undefined ? { body: o.raw } : o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
  const text = await res.text();
  const record = `${method} ${path} → ${res.status} ${JSON.stringify([...res.headers])}\n${text}`;
  allAnswers.push(record);
  if (who !== 'admin') nonAdminAnswers.push(record);
  let body: any = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return { status: res.status, body, text, headers: res.headers };
}

beforeAll(async () => {
  t = await createTestDatabase({ migrated: false });
  // The daemon connects as a role whose password is a canary, and migrates its own database.
  role = `canary_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${C.dbPassword}'`);
  await admin.query(`ALTER DATABASE ${t.name} OWNER TO ${role}`);
  await admin.end();
  const u = new URL(t.url);
  u.username = role;
  u.password = C.dbPassword;
  dbUrl = u.toString();

  servedWorld = (await world.serve()).url;
  const uyuniUrl = await uyuni.serve();
  for (const e of uyuni.fleet.errata) for (const c of e.cves) nvd.add(c, cvssMetric('3.1', 7.5));
  const nvdUrl = (await nvd.serve()).url;
  webhookUrl = `${(await hook.serve()).replace(/\/hook$/, '')}/services/${C.webhookPath}`;
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
  const smtpPort = (smtp.server.address() as { port: number }).port;
  env = {
    LOG_LEVEL: 'debug',
    UYUNI_URL: uyuniUrl,
    UYUNI_USER: 'canary-user',
    UYUNI_PASSWORD: C.uyuniPassword,
    UYUNI_POLL_INTERVAL_MINUTES: '10080',
    SALT_API_URL: 'http://127.0.0.1:9',
    SALT_USER: 'canary-salt',
    SALT_PASSWORD: C.saltPassword,
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(smtpPort),
    SMTP_USER: 'spm-mailer',
    SMTP_PASSWORD: C.smtpPassword,
    SMTP_ALLOW_PLAINTEXT_AUTH: 'true',
    WEBHOOK_SECRET: C.webhookSecret,
    NVD_URL: nvdUrl,
    NVD_API_KEY: C.nvdApiKey,
    METRICS_TOKEN: C.metricsToken,
    TRUST_PROXY: 'true',
    UI_PROXY_USER_HEADER: 'X-Remote-User',
    UI_PROXY_ROLE_HEADER: 'X-Remote-Role',
    UI_PROXY_SECRET: C.proxySecret,
  };
  await startDaemon();
  db = await createDb({ url: dbUrl, poolMax: 3 });
  for (const r of ROLES) {
    const g = await issueToken(db, `canary-${r}`, r, { expiresInDays: 30 });
    tokens[r] = g.token;
  }
  await setConfigValue(
    db,
    'notification_config',
    {
      email_enabled: true,
      recipients: ['ops@example.test'],
      webhook_enabled: true,
      webhook_url: webhookUrl,
      digest_time: '08:00',
      digest_enabled: false,
    },
    'test',
  );
  await setConfigValue(
    db,
    'test_thresholds',
    {
      wait_after_patch_seconds: 0,
      wait_after_reboot_seconds: 0,
      reboot_timeout_seconds: 600,
      step_timeout_seconds: 600,
      retry_base_seconds: 1,
      retry_max_seconds: 4,
      retry_max_attempts: 3,
      time_scale_ms: 20,
    },
    'test',
  );
}, 120_000);

afterAll(async () => {
  await db?.end();
  if (daemon && daemon.child.proc.exitCode === null) await stopDaemon();
  await uyuni.close();
  await hook.close();
  await new Promise<void>((r) => smtp.close(() => r()));
  await t.drop();
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  await admin.end();
});

describe('secret canaries (T12)', () => {
  it('a short end-to-end run through the daemon', async () => {
    await waitUntil(
      async () => (await call('viewer', 'GET', '/sync/status')).body?.last_run?.status === 'completed',
      30_000,
      'the startup sync',
    );
    // Reads of every role, and refusals.
    for (const r of ROLES) {
      for (const p of [
        '/whoami',
        '/queue?limit=5',
        '/queue/stats',
        '/approvals/pending',
        '/sync/status',
        '/errata?limit=3',
        '/errata/cache/stats',
        '/risk-profile?limit=3',
        '/deployments',
        '/lanes',
        '/notifications',
        '/reports/summary',
        '/reports/compliance',
        '/health/detail',
        '/audit?limit=5',
      ]) {
        await call(r, 'GET', p);
      }
    }
    await call('none', 'GET', '/queue');
    await call({ bearer: `spm_${'Z'.repeat(43)}` }, 'GET', '/queue');
    await call({ bearer: C.metricsToken }, 'GET', '/queue');
    await call('viewer', 'POST', '/queue', { body: { errata_id: 'x' } });
    await call('operator', 'POST', '/queue', { raw: '{"notes":"\\u0000"' });
    await call('operator', 'POST', '/queue', { body: { errata_id: 'USN-x', notes: 'a\u0000b' } });
    await call('operator', 'GET', '/queue?q=%00');
    // A test and a decision through the fake world: queued by the operator, approved by the approver.
    const errata = uyuni.fleet.errata.filter((e) => e.type === 'Security Advisory').map((e) => e.advisoryName);
    const listed = await call('operator', 'GET', '/queue?limit=50');
    let id = (listed.body.items as { id: number; errata_id: string }[]).find((i) => errata.includes(i.errata_id))?.id;
    if (id === undefined)
      id = (await call('operator', 'POST', '/queue', { body: { errata_id: errata[0] } })).body.results[0].id as number;
    expect(
      (
        await call('operator', 'POST', '/tests/start', {
          body: { queue_id: id, test_system: { id: 1, name: 'test-ubuntu-01' } },
        })
      ).status,
    ).toBe(202);
    let status = '';
    await waitUntil(
      async () => {
        status = (await call('viewer', 'GET', `/queue/${id}`)).body?.entry?.status;
        return ['pending_approval', 'needs_attention', 'failed', 'rolled_back', 'completed'].includes(status);
      },
      60_000,
      'the test',
      { child: () => daemon.child },
    );
    expect(status, JSON.stringify((await call('viewer', 'GET', `/queue/${id}`)).body?.entry)).toBe('pending_approval');
    for (const p of [`/queue/${id}`, `/queue/${id}/history`, `/queue/${id}/inspect`])
      for (const r of ROLES) await call(r, 'GET', p);
    expect(
      (await call('approver', 'POST', `/approvals/${id}/approve`, { body: { reason: 'canary run' } })).status,
    ).toBe(200);
    await waitUntil(
      async () =>
        ['completed', 'needs_attention'].includes((await call('viewer', 'GET', `/queue/${id}`)).body?.entry?.status),
      90_000,
      'the rollout',
    );
    await call('viewer', 'GET', '/deployments');
    await call('viewer', 'GET', '/deployments/1');
    // A notification by SMTP AUTH and by signed webhook; the first delivery of each fails.
    hook.failNext = 1;
    await enqueueAlert(db, {
      type: 'pending_approval',
      key: `canary-${id}`,
      errataId: errata[0] ?? null,
      queueId: id,
      subject: 'canary waiting',
      body: 'an entry waits',
    });
    await waitUntil(async () => mails.length >= 1 && hook.received.length >= 1, 90_000, 'both notifications delivered');
    for (const r of ROLES) await call(r, 'GET', '/notifications');
    expect(hook.received[0]?.signatureValid).toBe(true);
    expect(smtpAuths.some((a) => a.ok)).toBe(true);
    // /metrics with and without its token.
    expect(
      (await call('none', 'GET', '/metrics', { root: true, headers: { authorization: `Bearer ${C.metricsToken}` } }))
        .status,
    ).toBe(200);
    expect((await call('none', 'GET', '/metrics', { root: true })).status).toBe(401);
    // The dashboard: a token session (sign in, pages, sign out), the proxy, a forged proxy header.
    const login = await fetch(`http://127.0.0.1:${daemon.port}/ui/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${tokens.viewer}`,
      redirect: 'manual',
    });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    sessionId = cookie.replace('spm_session=', '');
    expect(sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const p of [
      '/ui',
      `/ui/entries/${id}`,
      `/ui/inspector/${id}`,
      '/ui/approvals',
      '/ui/deployments',
      '/ui/sync',
      '/ui/reports',
    ]) {
      await call('viewer', 'GET', p, { root: true, headers: { cookie } });
    }
    for (const p of ['/ui', `/ui/entries/${id}`]) {
      await call('operator', 'GET', p, {
        root: true,
        headers: { 'x-remote-user': 'carol', 'x-remote-role': 'operator', 'x-spm-proxy-secret': C.proxySecret },
      });
    }
    await call('viewer', 'GET', '/ui', {
      root: true,
      headers: { 'x-remote-user': 'mallory', 'x-remote-role': 'admin', 'x-spm-proxy-secret': `${C.proxySecret}x` },
    });
    const page = await (await fetch(`http://127.0.0.1:${daemon.port}/ui`, { headers: { cookie } })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';
    await fetch(`http://127.0.0.1:${daemon.port}/ui/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: `csrf=${csrf}`,
      redirect: 'manual',
    });
    // A sync whose UYUNI login fails (the lab now wants another password): an error path.
    (uyuni as unknown as { o: { password: string } }).o.password = 'another-password';
    await call('operator', 'POST', '/sync/trigger');
    await call('viewer', 'GET', '/sync/status');
    // A restart: the startup and shutdown logs twice.
    await stopDaemon();
    await startDaemon();
    await call('viewer', 'GET', '/health/detail');
    await stopDaemon();
  }, 300_000);

  it('0 canaries in the logs, the database, the answers to non-admins and the notifications; no stack trace', async () => {
    const envCanaries = Object.entries({
      ...C,
      ...Object.fromEntries(ROLES.map((r) => [`token_${r}`, tokens[r]])),
      sessionId,
    }).filter(([k]) => k !== 'webhookPath');
    const hits = (text: string, list: [string, string][]) =>
      list.filter(([, v]) => v && text.includes(v)).map(([k]) => k);
    const all = [...envCanaries, ['webhookPath', C.webhookPath] as [string, string]];

    const logText = logs.join('\n');
    expect(logText.length).toBeGreaterThan(1000);
    expect(hits(logText, all), 'logs').toEqual([]);

    // Every row of every table, as text; the webhook URL is allowed where it must be stored.
    const check = await createDb({ url: t.url, poolMax: 2 });
    try {
      const tables = await check.anyFirst(
        sql.type(
          z.object({ t: z.string() }),
        )`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
      );
      const found: string[] = [];
      for (const table of tables) {
        const rows = await check.anyFirst(
          sql.type(z.object({ r: z.string() }))`SELECT t::text AS r FROM ${sql.identifier([table])} t`,
        );
        for (const row of rows) {
          for (const k of hits(row, envCanaries)) found.push(`${table}: ${k}`);
          const allowed =
            (table === 'orchestrator_config' && row.includes('notification_config')) ||
            (table === 'orchestrator_notifications' && row.includes(`,webhook,`));
          if (row.includes(C.webhookPath) && !allowed) found.push(`${table}: webhookPath in ${row.slice(0, 200)}`);
        }
      }
      expect(found, 'database rows').toEqual([]);
      // The outbox keeps the URL as the recipient, never in the error text of a failed delivery.
      const stored = await check.anyFirst(
        sql.type(
          z.object({ e: z.string().nullable() }),
        )`SELECT error_message AS e FROM orchestrator_notifications WHERE channel = 'webhook'`,
      );
      expect(stored.join(' ')).not.toContain(C.webhookPath);
      // The refused first delivery was recorded (redacted), so the error path ran.
      expect(
        await check.oneFirst(
          sql.type(
            z.object({ n: z.number() }),
          )`SELECT max(attempts)::int AS n FROM orchestrator_notifications WHERE channel = 'webhook'`,
        ),
      ).toBeGreaterThanOrEqual(2);
    } finally {
      await check.end();
    }

    const nonAdmin = nonAdminAnswers.join('\n');
    expect(nonAdminAnswers.length).toBeGreaterThan(80);
    expect(nonAdmin).toContain('[redacted]');
    expect(hits(nonAdmin, all), 'answers to non-admins').toEqual([]);
    // Admins see the webhook URL (it is their setting) but no configured secret.
    expect(hits(allAnswers.join('\n'), envCanaries), 'answers to anyone').toEqual([]);
    expect(allAnswers.join('\n')).not.toMatch(/\n\s+at [\w.<]+ \(|node:internal|\.ts:\d+:\d+/);

    // What was delivered: the mail and the webhook body carry no secret (the signature is an HMAC).
    const delivered = [...mails, ...hook.received.map((h) => JSON.stringify(h.body))].join('\n');
    expect(hits(delivered, envCanaries), 'notifications').toEqual([]);
    expect(uyuni.logins).toBeGreaterThanOrEqual(1);
    expect(nvd.withApiKey).toBeGreaterThan(0);
  });
});
