/**
 * grafana/: every panel query of the three dashboards works.
 * - SQL panels (the `spm-postgres` data source): run against the migrated schema, with the
 *   errata cache filled by a lab sync, after expanding Grafana's macros and variables; time-series
 *   panels answer the `time`/`metric`/`value` columns Grafana needs.
 * - Prometheus panels (`spm-prometheus`) and the template variables: run on a real Prometheus
 *   (`/api/v1/query`, `status: success`) that loads prometheus/rules/spm.rules.yml and scrapes the
 *   lab world's node_exporter endpoints (host panels, recording rules) and the real daemon's
 *   /metrics (a child process against the lab, its lanes testing the auto-queued errata); each
 *   query must return at least one series (no empty panel).
 * - The provisioning files name the data-source uids the dashboards use.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_SCALE } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { UyuniSync } from '../src/services/uyuni/sync.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { labEngineEnv } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startChild, waitForHttp, type Child } from './helpers/proc.ts';
import { silentLogger } from './helpers/deps.ts';
import { startPrometheus, type PromProc } from './helpers/prometheus.ts';

interface Target {
  expr?: string;
  rawSql?: string;
  format?: string;
  refId: string;
  datasource: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: { uid: string } }[] };
}

const DIR = 'grafana/dashboards';
const dashboards = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: f, d: JSON.parse(readFileSync(path.join(DIR, f), 'utf8')) as Dashboard }));
const panelsOf = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
const queries = dashboards.flatMap(({ file, d }) =>
  panelsOf(d.panels).flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${file} · ${p.title} · ${t.refId}`, t }))),
);

/** Grafana's SQL macros and this dashboard set's variables, expanded as Grafana would for the last 30 days. */
function expandSql(q: string): string {
  const to = new Date();
  const from = new Date(to.getTime() - 30 * 86400_000);
  const secs = (i: string) => ({ s: 1, m: 60, h: 3600, d: 86400 })[i.slice(-1) as 's']! * Number(i.slice(0, -1));
  const out = q
    .replace(
      /\$__timeGroupAlias\(([^,]+),\s*'(\d+[smhd])'\)/g,
      (_m, col: string, i: string) =>
        `to_timestamp(floor(extract(epoch FROM ${col}) / ${secs(i)}) * ${secs(i)}) AS "time"`,
    )
    .replace(
      /\$__timeFilter\(([^)]+)\)/g,
      (_m, col: string) => `${col} BETWEEN '${from.toISOString()}'::timestamptz AND '${to.toISOString()}'::timestamptz`,
    )
    .replace(/\$__timeFrom\(\)/g, `'${from.toISOString()}'::timestamptz`)
    .replace(/\$__timeTo\(\)/g, `'${to.toISOString()}'::timestamptz`)
    .replace(/\$os\b/g, `'ubuntu','debian','rhel'`);
  if (/\$\w/.test(out)) throw new Error(`unexpanded macro or variable in: ${out}`);
  return out;
}

/** PromQL with the dashboards' variables at "All" (regex .*) and Grafana's interval variables. */
function expandPromql(q: string): string {
  const out = q
    .replace(/\$__rate_interval\b/g, '1m')
    .replace(/\$__interval\b/g, '15s')
    .replace(/\$__range\b/g, '1h')
    .replace(/job="\$job"/g, 'job="spm-orchestrator"')
    .replace(/\$(job|instance|prod_job)\b/g, '.*');
  if (/\$\w/.test(out)) throw new Error(`unexpanded variable in: ${out}`);
  return out;
}

describe('grafana/ provisioning', () => {
  it('declares the Prometheus and PostgreSQL data sources by the uids the dashboards use, and loads the dashboards folder', () => {
    const ds = readFileSync('grafana/provisioning/datasources/spm.yml', 'utf8');
    expect(ds).toMatch(/uid: spm-prometheus/);
    expect(ds).toMatch(/uid: spm-postgres/);
    expect(ds).toMatch(/type: prometheus/);
    expect(ds).toMatch(/type: grafana-postgresql-datasource/);
    const prov = readFileSync('grafana/provisioning/dashboards/spm.yml', 'utf8');
    expect(prov).toMatch(/type: file/);
    expect(dashboards.map((x) => x.file).sort()).toEqual([
      'compliance.json',
      'orchestrator.json',
      'patch-testing.json',
    ]);
    const uids = new Set(queries.map((q) => q.t.datasource.uid));
    expect([...uids].sort()).toEqual(['spm-postgres', 'spm-prometheus']);
    for (const { d } of dashboards) {
      const ids = panelsOf(d.panels).map((p) => p.id);
      expect(new Set(ids).size, `${d.uid}: panel ids repeat`).toBe(ids.length);
    }
  });
});

describe('grafana/ SQL panels against the real schema', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let world: LabWorld;
  beforeAll(async () => {
    t = await createTestDatabase();
    world = new LabWorld(SEED_SCALE);
    const urls = await world.start();
    const uyuni = new UyuniClient({
      url: urls.uyuni,
      user: 'admin',
      password: 'admin',
      verifySsl: true,
      timeoutMs: 5000,
      syncWorkers: 4,
    });
    expect(
      (await new UyuniSync({ db: t.db, logger: silentLogger, uyuni, prefixes: ['test-'] }).run('api')).status,
    ).toBe('completed');
  });
  afterAll(async () => {
    await world?.stop();
    await t?.drop();
  });

  const sqlQueries = queries.filter((q) => q.t.rawSql !== undefined);
  it('has SQL panels', () => {
    expect(sqlQueries.length).toBeGreaterThan(10);
  });
  it.each(sqlQueries.map((q) => [q.where, q.t] as const))('%s', async (_where, target) => {
    const c = new pg.Client({ connectionString: t.url });
    await c.connect();
    try {
      await c.query('SET default_transaction_read_only = on'); // a read-only Grafana role sees the same
      const r = await c.query(expandSql(target.rawSql!));
      const cols = r.fields.map((f) => f.name);
      if (target.format === 'time_series') {
        expect(cols[0]).toBe('time');
        expect(cols).toContain('value');
      } else {
        expect(cols.length).toBeGreaterThan(0);
      }
    } finally {
      await c.end();
    }
  });
  it('the errata panels show the synced cache', async () => {
    const c = new pg.Client({ connectionString: t.url });
    await c.connect();
    try {
      const q = queries.find((x) => x.where.includes('Applicable errata'))!;
      expect((await c.query(expandSql(q.t.rawSql!))).rows[0]).toEqual({ errata: '634' });
    } finally {
      await c.end();
    }
  });
});

describe('grafana/ Prometheus panels on a real Prometheus', () => {
  let prom: PromProc;
  let world: LabWorld;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let daemon: Child;
  const dir = mkdtempSync(path.join(tmpdir(), 'spm-grafana-'));
  beforeAll(async () => {
    world = new LabWorld(SEED_SCALE);
    const urls = await world.start();
    // The real daemon against the lab, its lanes on the lab's test systems: the sync, the
    // auto-queued security advisories and their tests fill its /metrics as a site's would.
    db = await createTestDatabase();
    const tests = world.fleet.systems.filter((x) => x.group.startsWith('test-'));
    await setConfigValue(
      db.db,
      'test_systems',
      Object.fromEntries(
        ['ubuntu', 'debian', 'rhel']
          .map((os) => [os, tests.filter((x) => x.os === os).map((x) => ({ system_id: x.id, system_name: x.name }))])
          .filter(([, l]) => (l as unknown[]).length > 0),
      ),
      'test',
    );
    const port = await freePort();
    daemon = startChild(
      ['serve'],
      labEngineEnv(urls, {
        DATABASE_URL: db.url,
        HTTP_PORT: String(port),
        INSTANCE_ID: 'grafana-e2e',
        SCHEDULER_POLL_MS: '200',
      }),
    );
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, daemon);
    // The rules as shipped, evaluated every second instead of 15 s (the test waits less).
    const rules = path.join(dir, 'spm.rules.yml');
    writeFileSync(
      rules,
      readFileSync('prometheus/rules/spm.rules.yml', 'utf8').replace(/interval: 15s/g, 'interval: 1s'),
    );
    const config =
      world.prometheusConfig({ scrapeIntervalS: 1, ruleFiles: [rules] }) +
      `  - job_name: spm-orchestrator\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`;
    prom = await startPrometheus(config);
    // Until the recording rules and the daemon's rates have two samples, and its effects ran.
    const ready = async () => {
      for (const q of [
        'instance:cpu_usage:avg5m',
        'rate(spm_transitions_total[1m])',
        'rate(spm_effects_total[1m])',
        'spm_snapshot_space_used_ratio',
        'spm_sync_last_success_timestamp_seconds',
      ]) {
        const body = (await (await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(q)}`)).json()) as {
          data: { result: unknown[] };
        };
        if (body.data.result.length === 0) return false;
      }
      return true;
    };
    for (let i = 0; i < 450 && !(await ready()); i++) await new Promise((r) => setTimeout(r, 200));
  }, 150_000);
  afterAll(async () => {
    await prom?.dispose();
    daemon?.proc.kill('SIGTERM');
    await daemon?.exited;
    await db?.drop();
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function query(
    q: string,
  ): Promise<{ status: string; error?: string; data?: { result: { metric: Record<string, string> }[] } }> {
    const r = await fetch(`${prom.url}/api/v1/query?query=${encodeURIComponent(q)}`);
    return r.json() as never;
  }

  const promQueries = queries.filter((q) => q.t.expr !== undefined);
  it.each(promQueries.map((q) => [q.where, q.t.expr!] as const))('%s', async (_where, expr) => {
    const body = await query(expandPromql(expr));
    expect(body, JSON.stringify(body)).toMatchObject({ status: 'success' });
    expect(body.data!.result.length, `no series for ${expr}`).toBeGreaterThan(0);
  });

  it('the template variables (label_values) find values', async () => {
    for (const { d } of dashboards) {
      for (const v of d.templating.list.filter((x) => x.type === 'query')) {
        const def = (v.query as { query: string }).query;
        const m = /^label_values\((.+),\s*(\w+)\)$/.exec(def);
        expect(m, `${d.uid}.${v.name}: ${def}`).not.toBeNull();
        const body = await query(expandPromql(m![1]!));
        expect(body.status).toBe('success');
        expect(
          body.data!.result.some((r) => r.metric[m![2]!] !== undefined),
          `${d.uid}.${v.name}: no ${m![2]} values`,
        ).toBe(true);
      }
    }
  });

  it("the lab's systems are scraped in the jobs the alert rules filter on (TestSystemDown, ServiceFailedAfterPatch)", async () => {
    for (const q of ['up{job="patch-test-systems"} == 1', 'instance:services_failed:count{job="patch-test-systems"}']) {
      const body = await query(q);
      expect(body.data!.result.length, `${q}: ${JSON.stringify(body).slice(0, 300)}`).toBeGreaterThan(0);
    }
  });

  it("the orchestrator's panels are fed by the real daemon's /metrics", async () => {
    const spm = promQueries.filter((q) => /\bspm_|process_|nodejs_|job="\$job"/.test(q.t.expr!)).map((q) => q.where);
    expect(spm.length).toBeGreaterThan(0);
    const up = await query('up{job="spm-orchestrator"} == 1');
    expect(up.data!.result.length).toBe(1);
  });
});
