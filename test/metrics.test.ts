/**
 * `GET /metrics` on a real daemon (startDaemon in-process, the test database, a fake world for the
 * effects): the documented names (docs/metrics.md), real values for an entry that waits for
 * approval, sync runs and the outbox as the database has them, effects and HTTP latency by
 * route pattern, the optional bearer token, and text that parses (our own parser and promtool's).
 */
import { spawnSync } from 'node:child_process';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { startDaemon, type Daemon } from '../src/daemon.ts';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { effectLabel } from '../src/services/metrics.ts';
import { seedErrata, waitForStatus } from './helpers/actors.ts';
import { adminToken } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

const METRICS_TOKEN = 'metrics-test-token-0123456789abcdef';
/** docs/metrics.md, every name (spm_snapshot_space_used_ratio is absent until the engine reports one). */
const DOCUMENTED = [
  'spm_pending_approvals_count',
  'spm_oldest_pending_approval_hours',
  'spm_entries',
  'spm_transitions_total',
  'spm_effects_total',
  'spm_effect_duration_seconds',
  'spm_sync_runs_total',
  'spm_sync_duration_seconds',
  'spm_sync_last_success_timestamp_seconds',
  'spm_lanes_busy',
  'spm_notification_outbox_depth',
  'spm_notification_failures_total',
  'spm_deployments',
  'spm_actors_in_memory',
  'spm_fenced_writes_rejected_total',
  'spm_http_request_duration_seconds',
];

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let daemon: Daemon;
let base: string;
let token: string;

beforeAll(async () => {
  t = await createTestDatabase();
  const config = parseConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: t.url,
    HTTP_PORT: '0',
    INSTANCE_ID: `metrics-${process.pid}`,
    SCHEDULER_POLL_MS: '100',
    METRICS_TOKEN,
  });
  daemon = await startDaemon(config, silentLogger, {
    engine: { ports: new FakeWorld().ports(), reconcile: true, lanes: false, description: 'fake world (metrics test)' },
    afterMigrate: async (db) => {
      await setConfigValue(
        db,
        'test_thresholds',
        { wait_after_patch_seconds: 0, wait_after_reboot_seconds: 0, poll_seconds: 0.05, time_scale_ms: 10 },
        'test',
      );
    },
  });
  base = `http://127.0.0.1:${daemon.port}`;
  token = await adminToken(t.db);
}, 120_000);
afterAll(async () => {
  await daemon?.stop();
  await t?.drop();
});

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text format, strictly: HELP/TYPE comments, then `name{l="v",…} value` lines of declared families. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(
    `^(${NAME})(?:\\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*",?)*)\\})? (-?(?:\\d+(?:\\.\\d+)?(?:e[+-]?\\d+)?|[Nn]a[Nn]|[+-]Inf))$`,
  );
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = sampleRe.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const labels: Record<string, string> = {};
    for (const l of (m![2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const family = [m![1]!, m![1]!.replace(/_(bucket|sum|count)$/, '')].find((f) => types.has(f));
    expect(family, `sample ${m![1]} has no # TYPE`).toBeDefined();
    samples.push({ name: m![1]!, labels, value: Number(m![3]) });
  }
  return { samples, types };
}

async function scrape(): Promise<{ text: string; samples: Sample[]; types: Map<string, string> }> {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, ...parseExposition(text) };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

describe('GET /metrics', () => {
  it('refuses without the bearer token when METRICS_TOKEN is set (401, WWW-Authenticate), and with a wrong one', async () => {
    const none = await fetch(`${base}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect(await none.json()).toMatchObject({ error: { code: 'unauthorized' } });
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).status).toBe(
      401,
    );
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Basic ${METRICS_TOKEN}` } })).status).toBe(401);
    // An API token is not a metrics token.
    expect((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    expect(
      (await fetch(`${base}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${METRICS_TOKEN}` } }))
        .status,
    ).toBe(405);
  });

  it('an entry waiting for approval: count 1 and the real age of its wait; effects, actors, HTTP latency by route pattern', async () => {
    await seedErrata(t.db, ['USN-9100-1']);
    const q = await api('POST', '/queue', { errata_id: 'USN-9100-1' });
    expect(q.status).toBe(201);
    const id = q.body.results[0].id as number;
    expect(
      (await api('POST', '/tests/start', { queue_id: id, test_system: { id: 1, name: 'test-ubuntu-01' } })).status,
    ).toBe(202);
    await waitForStatus(t.db, id, (s) => s === 'pending_approval', 30_000);
    let m = await scrape();
    expect(value(m.samples, 'spm_pending_approvals_count')).toBe(1);
    expect(value(m.samples, 'spm_oldest_pending_approval_hours')).toBeLessThan(0.05);

    // It has waited 50 hours (its journal row backdated: the journal is append-only, so by hand).
    await t.db.transaction(async (tx) => {
      await tx.query(sql.unsafe`ALTER TABLE patch_transitions DISABLE TRIGGER patch_transitions_append_only`);
      await tx.query(
        sql.unsafe`UPDATE patch_transitions SET at = at - interval '50 hours' WHERE queue_id = ${id} AND to_state = 'pending_approval'`,
      );
      await tx.query(sql.unsafe`ALTER TABLE patch_transitions ENABLE TRIGGER patch_transitions_append_only`);
    });
    m = await scrape();
    expect(value(m.samples, 'spm_pending_approvals_count')).toBe(1);
    const hours = value(m.samples, 'spm_oldest_pending_approval_hours')!;
    expect(hours).toBeGreaterThanOrEqual(50);
    expect(hours).toBeLessThan(50.1);
    expect(value(m.samples, 'spm_entries', { status: 'pending_approval' })).toBe(1);
    expect(value(m.samples, 'spm_entries', { status: 'needs_attention' })).toBe(0);
    expect(m.samples.filter((s) => s.name === 'spm_entries')).toHaveLength(19);
    expect(value(m.samples, 'spm_actors_in_memory')).toBe(1);
    expect(value(m.samples, 'spm_lanes_busy')).toBe(0);

    for (const step of ['snapshot', 'baseline', 'apply', 'validate']) {
      expect(
        value(m.samples, 'spm_effects_total', { effect: step, outcome: 'succeeded' }),
        step,
      ).toBeGreaterThanOrEqual(1);
      expect(value(m.samples, 'spm_effect_duration_seconds_count', { effect: step }), step).toBeGreaterThanOrEqual(1);
    }
    expect(m.samples.some((s) => s.name === 'spm_effects_total' && /\d/.test(s.labels.effect!))).toBe(false);
    expect(
      value(m.samples, 'spm_http_request_duration_seconds_count', {
        route: '/api/v1/queue',
        method: 'POST',
        status: '201',
      }),
    ).toBe(1);
    expect(
      value(m.samples, 'spm_http_request_duration_seconds_count', {
        route: '/api/v1/tests/start',
        method: 'POST',
        status: '202',
      }),
    ).toBe(1);
    expect(
      value(m.samples, 'spm_http_request_duration_seconds_count', { route: '/metrics', method: 'GET', status: '401' }),
    ).toBeGreaterThanOrEqual(1);
    // Never a raw path with the entry id in it.
    expect(m.samples.some((s) => s.name.startsWith('spm_http_') && /\/\d+(\/|$)/.test(s.labels.route ?? ''))).toBe(
      false,
    );
  });

  it('sync runs, the last success and the outbox as the database has them', async () => {
    let m = await scrape();
    expect(value(m.samples, 'spm_sync_last_success_timestamp_seconds')).toBe(0);
    expect(value(m.samples, 'spm_sync_runs_total', { outcome: 'completed' })).toBe(0);
    await t.db.query(sql.unsafe`
      INSERT INTO sync_runs (trigger, status, started_at, finished_at) VALUES
        ('api', 'failed', now() - interval '20 minutes', now() - interval '19 minutes'),
        ('api', 'completed', now() - interval '10 minutes', now() - interval '10 minutes' + interval '42 seconds'),
        ('api', 'running', now(), NULL)`);
    await t.db.query(sql.unsafe`
      INSERT INTO orchestrator_notifications (type, recipient, channel, subject, body, idempotency_key, status, attempts, next_attempt_at) VALUES
        ('test', 'https://hooks.example/x', 'webhook', 's', 'b', 'metrics-1', 'pending', 2, now() + interval '1 day'),
        ('test', 'ops@example.com', 'email', 's', 'b', 'metrics-2', 'sent', 3, now() + interval '1 day'),
        ('test', 'ops@example.com', 'email', 's', 'b', 'metrics-3', 'failed', 8, now() + interval '1 day')`);
    m = await scrape();
    expect(value(m.samples, 'spm_sync_runs_total', { outcome: 'completed' })).toBe(1);
    expect(value(m.samples, 'spm_sync_runs_total', { outcome: 'failed' })).toBe(1);
    expect(value(m.samples, 'spm_sync_duration_seconds_count')).toBe(2);
    expect(value(m.samples, 'spm_sync_duration_seconds_bucket', { le: '60' })).toBe(2);
    expect(value(m.samples, 'spm_sync_duration_seconds_bucket', { le: '30' })).toBe(0);
    const last = value(m.samples, 'spm_sync_last_success_timestamp_seconds')!;
    expect(Math.abs(last - (Date.now() / 1000 - 600 + 42))).toBeLessThan(30);
    expect(value(m.samples, 'spm_notification_outbox_depth')).toBe(1);
    expect(value(m.samples, 'spm_notification_failures_total', { channel: 'webhook' })).toBe(2);
    expect(value(m.samples, 'spm_notification_failures_total', { channel: 'email' })).toBe(2 + 8);
    // Counted once: a second scrape sees the same totals.
    m = await scrape();
    expect(value(m.samples, 'spm_sync_runs_total', { outcome: 'completed' })).toBe(1);
    expect(value(m.samples, 'spm_notification_failures_total', { channel: 'email' })).toBe(10);
  });

  it('every documented name, process metrics, each deployment status; the text passes promtool', async () => {
    const m = await scrape();
    for (const n of DOCUMENTED) expect(m.types.has(n), n).toBe(true);
    expect(m.types.get('spm_effects_total')).toBe('counter');
    expect(m.types.get('spm_effect_duration_seconds')).toBe('histogram');
    expect(m.types.get('spm_oldest_pending_approval_hours')).toBe('gauge');
    expect(
      m.samples
        .filter((s) => s.name === 'spm_deployments')
        .map((s) => s.labels.status)
        .sort(),
    ).toEqual([
      'completed',
      'failed',
      'halted',
      'in_progress',
      'partial_failure',
      'pending',
      'rolled_back',
      'scheduled',
    ]);
    expect(value(m.samples, 'spm_fenced_writes_rejected_total')).toBe(0);
    expect(value(m.samples, 'spm_transitions_total')).toBeGreaterThanOrEqual(0);
    for (const n of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ])
      expect(m.types.has(n), n).toBe(true);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8' });
    if (promtool.error) return; // promtool not installed
    // Exit 3 = lint findings only. Expected: two names fixed by the contract (a gauge named _count,
    // hours instead of seconds) and prom-client's own nodejs_active_*_total gauges.
    expect(promtool.stderr + promtool.stdout).not.toMatch(/parsing error/);
    const accepted = /^(spm_pending_approvals_count|spm_oldest_pending_approval_hours|nodejs_active_\w+_total) /;
    expect(
      (promtool.stdout + promtool.stderr)
        .trim()
        .split('\n')
        .filter(Boolean)
        .filter((l) => !accepted.test(l)),
    ).toEqual([]);
  });
});

describe('effect labels and METRICS_TOKEN validation', () => {
  it('the effect label is the step without its numbers', () => {
    expect(effectLabel('7:1:apply')).toBe('apply');
    expect(effectLabel('7:1:apply#2')).toBe('apply');
    expect(effectLabel('7:p2:deploy_wave_1_plan0')).toBe('deploy_wave');
    expect(effectLabel('7:p1:plan_deployment_3')).toBe('plan_deployment');
    expect(effectLabel('7:2:notify_pending_approval_1')).toBe('notify_pending_approval');
  });

  it('a short or spaced METRICS_TOKEN is refused at start without echoing it', () => {
    expect(() => parseConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: expected 16 to 512 characters/);
    try {
      parseConfig({ METRICS_TOKEN: 'has spaces but is long enough' });
    } catch (e) {
      expect(String((e as { problems?: string[] }).problems)).not.toContain('has spaces');
    }
    expect(parseConfig({ METRICS_TOKEN: 'a'.repeat(32) }).metrics.token).toBe('a'.repeat(32));
    expect(parseConfig({}).metrics.token).toBeUndefined();
  });
});
