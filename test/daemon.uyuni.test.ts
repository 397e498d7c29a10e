/**
 * The real daemon against the lab UYUNI and a lab NVD: the startup sync fills the errata cache,
 * Security Advisories are auto-queued with success scores computed from their packages, NVD raises
 * severities, and the sync/errata endpoints report it.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { generateFleet, SEED_SCALE } from '../src/lab/fleet.ts';
import { cvssMetric, LabNvd } from '../src/lab/nvd.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { adminToken, api } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startChild, waitForHttp, type Child } from './helpers/proc.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const lab = new LabUyuni(generateFleet(SEED_SCALE));
const nvd = new LabNvd();
let nvdServer: { close(): void };
let child: Child;
let call: ReturnType<typeof api>;

beforeAll(async () => {
  t = await createTestDatabase();
  const uyuniUrl = await lab.serve();
  // NVD knows the first security advisory's CVEs: one of them is critical.
  const first = lab.fleet.errata.find((e) => e.type === 'Security Advisory')!;
  for (const c of first.cves) nvd.add(c, cvssMetric('3.1', 9.8));
  const served = await nvd.serve();
  nvdServer = served.server;
  const port = await freePort();
  child = startChild(['serve'], {
    DATABASE_URL: t.url,
    HTTP_PORT: String(port),
    LOG_LEVEL: 'warn',
    INSTANCE_ID: 'uyuni-e2e',
    NODE_ENV: 'test',
    UYUNI_URL: uyuniUrl,
    UYUNI_USER: 'admin',
    UYUNI_PASSWORD: 'admin',
    UYUNI_SYNC_WORKERS: '8',
    NVD_URL: served.url,
    NVD_API_KEY: 'lab-key',
  });
  await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, child);
  call = api(`http://127.0.0.1:${port}/api/v1`, await adminToken(t.db));
}, 60_000);

afterAll(async () => {
  child.proc.kill('SIGTERM');
  await child.exited;
  nvdServer.close();
  await lab.close();
  await t.drop();
});

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await fn();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    v = await fn();
  }
  return v;
}

describe('daemon with UYUNI configured', () => {
  it('syncs at start, auto-queues Security Advisories with scores from their packages', async () => {
    const status = await until(
      () => call('GET', '/sync/status'),
      (r) => r.body?.last_run?.status === 'completed',
    );
    expect(status.body).toMatchObject({
      configured: true,
      last_run: {
        status: 'completed',
        trigger: 'startup',
        stats: { errata: { total: 634, new: 634 }, logins: 1, logouts: 1 },
      },
    });
    const security = lab.fleet.errata.filter((e) => e.type === 'Security Advisory').length;
    const queue = await until(
      () => call('GET', '/queue?limit=1000'),
      (r) => r.body?.total === security,
    );
    expect(queue.body.total).toBe(security);
    // Scores come from the packages (kernel errata score lower than a tzdata fix), highest first.
    const scores = queue.body.items.map((i: { success_score: number }) => i.success_score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(new Set(scores).size).toBeGreaterThan(3);
    const profiles = await t.db.oneFirst(
      sql.type(
        z.object({ n: z.number() }),
      )`SELECT count(*)::int AS n FROM patch_risk_profile WHERE score_breakdown ? 'kernel'`,
    );
    expect(profiles).toBe(security);
    // One UYUNI session for the whole cycle: the sync and the profiling of what it queued.
    await until(
      async () => lab.logouts,
      (n) => n >= 1,
    );
    expect({ logins: lab.logins, logouts: lab.logouts, listPackages: lab.count('errata.listPackages') }).toEqual({
      logins: 1,
      logouts: 1,
      listPackages: security,
    });
  });

  it('enriches severity from NVD after the sync, without blocking it', async () => {
    const first = lab.fleet.errata.find((e) => e.type === 'Security Advisory')!;
    const row = await until(
      () =>
        t.db.one(
          sql.type(
            z.object({ severity: z.string(), severity_source: z.string() }),
          )`SELECT severity, severity_source FROM errata_cache WHERE errata_id = ${first.advisoryName}`,
        ),
      (r) => r.severity_source === 'nvd',
    );
    expect(row).toEqual({ severity: 'Critical', severity_source: 'nvd' });
    expect(nvd.withApiKey).toBeGreaterThan(0);
    // Shown while the (long) enrichment still runs, not only at its end.
    const st = await until(
      () => call('GET', '/sync/status'),
      (r) => r.body?.nvd?.state === 'reachable',
    );
    expect(st.body.nvd).toMatchObject({ state: 'reachable', message: expect.stringMatching(/^NVD reachable since /) });
  });

  it('POST /sync/trigger runs a sync that finds nothing new; the errata endpoints report the cache', async () => {
    const r = await call('POST', '/sync/trigger');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'completed', errata: { new: 0, unchanged: 634 } });
    expect(r.body.calls['errata.listCves']).toBeUndefined();
    const stats = await call('GET', '/errata/cache/stats');
    expect(stats.body).toMatchObject({ total: 634, by_os: { ubuntu: 400, rhel: 234 } });
    const rhel = await call('GET', '/errata?target_os=rhel&advisory_type=Bug%20Fix%20Advisory&limit=5');
    expect(rhel.body.items.every((e: { errata_id: string }) => e.errata_id.startsWith('RHBA-'))).toBe(true);
    expect((await call('GET', '/errata?severity=Bogus')).status).toBe(400);
  });

  it('risk profiles: list by band, one with its breakdown, recalculate on demand', async () => {
    const kernel = lab.fleet.errata.find(
      (e) => e.type === 'Security Advisory' && e.packages.some((p) => p.name.startsWith('linux-image')),
    )!;
    const one = await call('GET', `/risk-profile/${kernel.advisoryName}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({
      errata_id: kernel.advisoryName,
      affects_kernel: true,
      requires_reboot: true,
      score_breakdown: { kernel: 30, reboot: 15 },
    });
    const low = await call('GET', '/risk-profile?risk_level=Very%20High&limit=5');
    expect(
      low.body.items.every(
        (p: { success_score: number; risk_level: string }) => p.success_score < 40 && p.risk_level === 'Very High',
      ),
    ).toBe(true);
    const bug = lab.fleet.errata.find((e) => e.type === 'Bug Fix Advisory')!;
    const calc = await call('POST', '/risk-profile/calculate', { errata_ids: [bug.advisoryName, 'NOPE-1'] });
    expect(calc.status).toBe(200);
    expect(calc.body).toMatchObject({
      unknown: ['NOPE-1'],
      calculated: [{ errata_id: bug.advisoryName, score: expect.any(Number) }],
    });
    expect((await call('GET', '/risk-profile/NOPE-1')).status).toBe(404);
    expect((await call('POST', '/risk-profile/calculate', { errata_ids: [] })).status).toBe(400);
  });
});
