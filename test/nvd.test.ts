import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { cvssMetric, LabNvd } from '../src/lab/nvd.ts';
import {
  highestSeverity,
  NvdClient,
  NvdThrottledError,
  NvdUnreachableError,
  pickScore,
  severityOf,
} from '../src/services/nvd/client.ts';
import { enrichFromNvd } from '../src/services/nvd/enrich.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { syncStatus } from '../src/services/views/syncView.ts';

describe('pickScore (CVSS preference)', () => {
  const m = (...xs: ReturnType<typeof cvssMetric>[]) => {
    const out: Record<string, unknown[]> = {};
    for (const x of xs) (out[x.key] ??= []).push(x.entry);
    return out;
  };
  it('prefers v4.0, then v3.1, then v3.0, then v2', () => {
    expect(
      pickScore('CVE-2024-0001', m(cvssMetric('2.0', 5), cvssMetric('3.1', 7.5), cvssMetric('4.0', 9.3))),
    ).toMatchObject({ baseScore: 9.3, severity: 'Critical', cvssVersion: '4.0' });
    expect(
      pickScore('CVE-2024-0001', m(cvssMetric('2.0', 5), cvssMetric('3.0', 6.1), cvssMetric('3.1', 7.5))),
    ).toMatchObject({ baseScore: 7.5, cvssVersion: '3.1' });
    expect(pickScore('CVE-2024-0001', m(cvssMetric('2.0', 5), cvssMetric('3.0', 6.1)))).toMatchObject({
      baseScore: 6.1,
      severity: 'Medium',
    });
    expect(pickScore('CVE-2024-0001', m(cvssMetric('2.0', 2.1)))).toMatchObject({
      baseScore: 2.1,
      severity: 'Low',
      cvssVersion: '2.0',
    });
  });
  it('within a version: Primary from nvd@nist.gov, then any Primary, then Secondary', () => {
    const sec = cvssMetric('3.1', 9.8, { source: 'vendor@example', type: 'Secondary' });
    const prim = cvssMetric('3.1', 5.3, { source: 'vendor@example', type: 'Primary' });
    const nvd = cvssMetric('3.1', 7.1);
    expect(pickScore('CVE-2024-0002', m(sec, prim, nvd)).baseScore).toBe(7.1);
    expect(pickScore('CVE-2024-0002', m(sec, prim)).baseScore).toBe(5.3);
    expect(pickScore('CVE-2024-0002', m(sec)).baseScore).toBe(9.8);
  });
  it('no metrics yet (NVD lags): found but unscored; a malformed entry names the field', () => {
    expect(pickScore('CVE-2024-0003', {})).toMatchObject({ found: true, baseScore: null, severity: null });
    expect(() => pickScore('CVE-2024-0003', { cvssMetricV31: [{ cvssData: { baseScore: 'high' } }] })).toThrow(
      /CVE-2024-0003: metrics\.cvssMetricV31\[0\] is malformed: cvssData\.baseScore/,
    );
  });
  it('buckets and the highest severity', () => {
    expect([9, 8.9, 7, 6.9, 4, 3.9, 0.1, 0].map(severityOf)).toEqual([
      'Critical',
      'High',
      'High',
      'Medium',
      'Medium',
      'Low',
      'Low',
      'None',
    ]);
    expect(highestSeverity(['Low', null, 'High', 'Medium'])).toBe('High');
    expect(highestSeverity([null])).toBeNull();
  });
});

describe('NvdClient against the lab NVD', () => {
  let lab: LabNvd;
  let server: Server;
  let url: string;
  const slept: number[] = [];
  const sleep = async (ms: number) => {
    slept.push(ms);
  };
  beforeAll(async () => {
    lab = new LabNvd();
    lab.add('CVE-2024-6387', cvssMetric('3.1', 8.1));
    lab.add('CVE-2024-9999', cvssMetric('4.0', 9.3), cvssMetric('3.1', 9.8));
    lab.add('CVE-2023-0001', cvssMetric('2.0', 4.3));
    ({ url, server } = await lab.serve());
  });
  afterAll(() => server.close());

  it('fetches a score, says "not found" for an unknown CVE, sends apiKey as a header', async () => {
    const nvd = new NvdClient({ baseUrl: url, apiKey: 'k-123', sleep });
    expect(await nvd.fetchScore('CVE-2024-6387')).toMatchObject({
      found: true,
      baseScore: 8.1,
      severity: 'High',
      cvssVersion: '3.1',
    });
    expect(await nvd.fetchScore('CVE-2020-0404')).toMatchObject({ found: false, baseScore: null });
    expect(lab.withApiKey).toBeGreaterThanOrEqual(2);
    await expect(nvd.fetchScore('not-a-cve')).rejects.toThrow(/not a CVE id/);
  });

  it('spaces requests: one per ~6 s without a key', async () => {
    slept.length = 0;
    const nvd = new NvdClient({ baseUrl: url, sleep });
    await nvd.fetchScore('CVE-2024-6387');
    await nvd.fetchScore('CVE-2023-0001');
    expect(slept.some((ms) => ms > 5000 && ms <= 6000)).toBe(true);
  });

  it('treats 403 and 429 as throttling: backs off and retries, then gives up with a transient error', async () => {
    slept.length = 0;
    lab.throttleFirst = 2;
    lab.throttleStatus = 403;
    const nvd = new NvdClient({ baseUrl: url, minIntervalMs: 0, throttleBackoffMs: 1000, sleep });
    expect(await nvd.fetchScore('CVE-2024-9999')).toMatchObject({ baseScore: 9.3, severity: 'Critical' });
    expect(slept.filter((ms) => ms >= 750).length).toBe(2);
    lab.throttleFirst = 10;
    lab.throttleStatus = 429;
    const err = await new NvdClient({
      baseUrl: url,
      minIntervalMs: 0,
      throttleBackoffMs: 1,
      maxThrottleRetries: 2,
      sleep,
    })
      .fetchScore('CVE-2024-9999')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NvdThrottledError);
    expect((err as Error).message).toMatch(/still throttled \(HTTP 429\) after 3 attempts/);
    lab.throttleFirst = 0;
  });

  it('a malformed answer is an error naming the CVE and field', async () => {
    lab.malformed.add('CVE-2024-0666');
    await expect(new NvdClient({ baseUrl: url, minIntervalMs: 0, sleep }).fetchScore('CVE-2024-0666')).rejects.toThrow(
      /NVD CVE-2024-0666: unexpected answer: totalResults/,
    );
  });
});

describe('enrichFromNvd', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let lab: LabNvd;
  let server: Server;
  let url: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    lab = new LabNvd();
    lab.add('CVE-2024-1000', cvssMetric('3.1', 5.0));
    lab.add('CVE-2024-1001', cvssMetric('3.1', 9.1));
    lab.add('CVE-2024-2000', cvssMetric('3.1', 3.1));
    ({ url, server } = await lab.serve());
    await t.db.query(sql.unsafe`
      INSERT INTO errata_cache (errata_id, advisory_type, target_os, severity, cves) VALUES
        ('7001-1', 'Security Advisory', 'ubuntu', 'Medium', ARRAY['CVE-2024-1000', 'CVE-2024-1001']),
        ('7002-1', 'Security Advisory', 'ubuntu', 'Medium', ARRAY['CVE-2024-2000']),
        ('7003-1', 'Security Advisory', 'ubuntu', 'Medium', ARRAY['CVE-2024-3000']),
        ('RHBA-2026:0001', 'Bug Fix Advisory', 'rhel', 'Low', '{}')`);
  });
  afterAll(async () => {
    server.close();
    await t.drop();
  });

  it('raises each errata to its worst CVE, keeps the UYUNI mapping without NVD data, fetches a CVE once', async () => {
    const nvd = new NvdClient({ baseUrl: url, minIntervalMs: 0, sleep: async () => undefined });
    const first = await enrichFromNvd(t.db, nvd, silentLogger);
    expect(first).toEqual({ fetched: 4, notFound: 1, errataUpdated: 2, stoppedEarly: null });
    const rows = await t.db.any(sql.type(
      z.object({
        errata_id: z.string(),
        severity: z.string(),
        cvss_score: z.number().nullable(),
        severity_source: z.string(),
      }),
    )`
      SELECT errata_id, severity, cvss_score, severity_source FROM errata_cache ORDER BY errata_id`);
    expect(rows).toEqual([
      { errata_id: '7001-1', severity: 'Critical', cvss_score: 9.1, severity_source: 'nvd' },
      { errata_id: '7002-1', severity: 'Low', cvss_score: 3.1, severity_source: 'nvd' },
      { errata_id: '7003-1', severity: 'Medium', cvss_score: null, severity_source: 'uyuni' },
      { errata_id: 'RHBA-2026:0001', severity: 'Low', cvss_score: null, severity_source: 'uyuni' },
    ]);
    const requests = lab.requests;
    expect(await enrichFromNvd(t.db, nvd, silentLogger)).toEqual({
      fetched: 0,
      notFound: 0,
      errataUpdated: 0,
      stoppedEarly: null,
    });
    expect(lab.requests).toBe(requests);
  });

  it('a throttled NVD pauses the run without failing it; the rest comes next time', async () => {
    await t.db.query(
      sql.unsafe`UPDATE errata_cache SET cves = cves || ARRAY['CVE-2024-4000', 'CVE-2024-4001'] WHERE errata_id = '7002-1'`,
    );
    lab.add('CVE-2024-4000', cvssMetric('3.1', 7.2));
    lab.add('CVE-2024-4001', cvssMetric('3.1', 4.4));
    lab.throttleFirst = 100;
    const nvd = new NvdClient({
      baseUrl: url,
      minIntervalMs: 0,
      throttleBackoffMs: 1,
      maxThrottleRetries: 1,
      sleep: async () => undefined,
    });
    const paused = await enrichFromNvd(t.db, nvd, silentLogger);
    expect(paused).toMatchObject({ fetched: 0, errataUpdated: 0 });
    expect(paused.stoppedEarly).toMatch(/throttled/);
    lab.throttleFirst = 0;
    expect(await enrichFromNvd(t.db, nvd, silentLogger)).toMatchObject({ fetched: 2, errataUpdated: 1 });
    expect(
      await t.db.oneFirst(
        sql.type(z.object({ s: z.string() }))`SELECT severity AS s FROM errata_cache WHERE errata_id = '7002-1'`,
      ),
    ).toBe('High');
  });
});

describe('NVD unreachable (air-gapped site)', () => {
  /** A port that refuses, or a lab NVD, switchable; counts the connection attempts. */
  async function switchable(lab: LabNvd) {
    const inner = await lab.serve();
    let up = false;
    let attempts = 0;
    const front = createServer((req, res) => {
      attempts++;
      if (!up) return void req.socket.destroy(); // as a dropped route: no HTTP answer at all
      fetch(`${inner.url}${req.url}`, {
        headers: req.headers.apikey ? { apiKey: String(req.headers.apikey) } : {},
      }).then(async (r) => res.writeHead(r.status, { 'content-type': 'application/json' }).end(await r.text()));
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
    return {
      url: `http://127.0.0.1:${(front.address() as AddressInfo).port}`,
      setUp: (v: boolean) => void (up = v),
      attempts: () => attempts,
      close: () => {
        front.close();
        inner.server.close();
      },
    };
  }

  it('the client records "NVD unreachable since …", backs off without touching the network, and recovers', async () => {
    const lab = new LabNvd();
    lab.add('CVE-2024-6387', cvssMetric('3.1', 8.1));
    const nvd0 = await switchable(lab);
    let now = Date.parse('2026-12-01T10:00:00Z');
    const nvd = new NvdClient({
      baseUrl: nvd0.url,
      minIntervalMs: 0,
      sleep: async () => undefined,
      now: () => now,
      unreachableBackoffMs: 60_000,
    });
    try {
      expect(nvd.status()).toMatchObject({ state: 'unknown', message: 'NVD not contacted yet' });
      const first = await nvd.fetchScore('CVE-2024-6387').catch((e: unknown) => e);
      expect(first).toBeInstanceOf(NvdUnreachableError);
      expect(first).toMatchObject({ transient: true, backingOff: false });
      const st = nvd.status();
      expect(st).toMatchObject({ state: 'unreachable', since: new Date(now), failures: 1 });
      expect(st.message).toMatch(/^NVD unreachable since 2026-12-01T10:00:00\.000Z \(.+\); next try after /);
      expect(st.retryAt!.getTime() - now).toBeGreaterThanOrEqual(48_000);
      expect(st.retryAt!.getTime() - now).toBeLessThanOrEqual(72_000);
      // Inside the backoff: answered at once, no request.
      const tries = nvd0.attempts();
      now += 30_000;
      await expect(nvd.fetchScore('CVE-2024-6387')).rejects.toMatchObject({ backingOff: true });
      expect(nvd0.attempts()).toBe(tries);
      // After it: one attempt, failed again, the backoff doubles; "since" stays the first failure.
      now = st.retryAt!.getTime() + 1;
      await expect(nvd.fetchScore('CVE-2024-6387')).rejects.toMatchObject({ backingOff: false });
      expect(nvd0.attempts()).toBe(tries + 1);
      const st2 = nvd.status();
      expect(st2).toMatchObject({ failures: 2, since: new Date(Date.parse('2026-12-01T10:00:00Z')) });
      expect(st2.retryAt!.getTime() - now).toBeGreaterThanOrEqual(96_000);
      // NVD is back.
      nvd0.setUp(true);
      now = st2.retryAt!.getTime() + 1;
      expect(await nvd.fetchScore('CVE-2024-6387')).toMatchObject({ baseScore: 8.1 });
      expect(nvd.status()).toMatchObject({ state: 'reachable', failures: 0, retryAt: null });
    } finally {
      nvd0.close();
    }
  });

  it('enrichment logs one warning (not one per CVE or per run), keeps the UYUNI severities, and resumes when NVD is back', async () => {
    const t = await createTestDatabase();
    const lab = new LabNvd();
    const cves = Array.from({ length: 30 }, (_, i) => `CVE-2025-${String(1000 + i)}`);
    for (const c of cves) lab.add(c, cvssMetric('3.1', 9.5));
    const front = await switchable(lab);
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    let now = Date.parse('2026-12-01T10:00:00Z');
    const nvd = new NvdClient({
      baseUrl: front.url,
      minIntervalMs: 0,
      sleep: async () => undefined,
      now: () => now,
      unreachableBackoffMs: 60_000,
    });
    try {
      await t.db.query(
        sql.unsafe`INSERT INTO errata_cache (errata_id, advisory_type, target_os, severity, cves) VALUES ('8001-1', 'Security Advisory', 'ubuntu', 'Medium', ${sql.array(cves, 'text')})`,
      );
      for (let run = 0; run < 3; run++) {
        const r = await enrichFromNvd(t.db, nvd, logger);
        expect(r).toMatchObject({ fetched: 0, errataUpdated: 0 });
        expect(r.stoppedEarly).toMatch(/NVD unreachable since 2026-12-01T10:00:00\.000Z/);
        now += 30 * 60_000; // the next sync, 30 minutes later
      }
      expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
        'NVD unreachable: severity enrichment paused, severities keep the UYUNI mapping; retrying with backoff',
      ]);
      expect(front.attempts()).toBe(3); // one attempt per run, not one per CVE
      // Shared through the database: any replica's /sync/status (and /health/detail) shows it.
      const shown = (await syncStatus(t.db, undefined, true)).nvd;
      expect(shown).toMatchObject({ state: 'unreachable', since: '2026-12-01T10:00:00.000Z', failures: 3 });
      expect(shown.message).toMatch(/^NVD unreachable since 2026-12-01T10:00:00\.000Z/);
      expect((await syncStatus(t.db, undefined, false)).nvd).toMatchObject({ state: 'disabled' });
      expect(
        await t.db.oneFirst(
          sql.type(z.object({ s: z.string() }))`SELECT severity AS s FROM errata_cache WHERE errata_id = '8001-1'`,
        ),
      ).toBe('Medium');
      front.setUp(true);
      now += 24 * 3600_000;
      expect(await enrichFromNvd(t.db, nvd, logger)).toMatchObject({
        fetched: 30,
        errataUpdated: 1,
        stoppedEarly: null,
      });
      expect(lines.some((l) => l.level === 30 && l.msg === 'NVD reachable again: severity enrichment resumed')).toBe(
        true,
      );
      expect((await syncStatus(t.db, undefined, true)).nvd).toMatchObject({ state: 'reachable', failures: 0 });
      expect(
        await t.db.oneFirst(
          sql.type(z.object({ s: z.string() }))`SELECT severity AS s FROM errata_cache WHERE errata_id = '8001-1'`,
        ),
      ).toBe('Critical');
    } finally {
      front.close();
      await t.drop();
    }
  });
});
