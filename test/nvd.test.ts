import type { Server } from 'node:http';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { cvssMetric, LabNvd } from '../src/lab/nvd.ts';
import { highestSeverity, NvdClient, NvdThrottledError, pickScore, severityOf } from '../src/services/nvd/client.ts';
import { enrichFromNvd } from '../src/services/nvd/enrich.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

describe('pickScore (CVSS preference)', () => {
  const m = (...xs: ReturnType<typeof cvssMetric>[]) => {
    const out: Record<string, unknown[]> = {};
    for (const x of xs) (out[x.key] ??= []).push(x.entry);
    return out;
  };
  it('prefers v4.0, then v3.1, then v3.0, then v2', () => {
    expect(pickScore('CVE-2024-0001', m(cvssMetric('2.0', 5), cvssMetric('3.1', 7.5), cvssMetric('4.0', 9.3)))).toMatchObject({ baseScore: 9.3, severity: 'Critical', cvssVersion: '4.0' });
    expect(pickScore('CVE-2024-0001', m(cvssMetric('2.0', 5), cvssMetric('3.0', 6.1), cvssMetric('3.1', 7.5)))).toMatchObject({ baseScore: 7.5, cvssVersion: '3.1' });
    expect(pickScore('CVE-2024-0001', m(cvssMetric('2.0', 5), cvssMetric('3.0', 6.1)))).toMatchObject({ baseScore: 6.1, severity: 'Medium' });
    expect(pickScore('CVE-2024-0001', m(cvssMetric('2.0', 2.1)))).toMatchObject({ baseScore: 2.1, severity: 'Low', cvssVersion: '2.0' });
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
    expect(() => pickScore('CVE-2024-0003', { cvssMetricV31: [{ cvssData: { baseScore: 'high' } }] })).toThrow(/CVE-2024-0003: metrics\.cvssMetricV31\[0\] is malformed: cvssData\.baseScore/);
  });
  it('buckets and the highest severity', () => {
    expect([9, 8.9, 7, 6.9, 4, 3.9, 0.1, 0].map(severityOf)).toEqual(['Critical', 'High', 'High', 'Medium', 'Medium', 'Low', 'Low', 'None']);
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
    expect(await nvd.fetchScore('CVE-2024-6387')).toMatchObject({ found: true, baseScore: 8.1, severity: 'High', cvssVersion: '3.1' });
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
    const err = await new NvdClient({ baseUrl: url, minIntervalMs: 0, throttleBackoffMs: 1, maxThrottleRetries: 2, sleep }).fetchScore('CVE-2024-9999').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NvdThrottledError);
    expect((err as Error).message).toMatch(/still throttled \(HTTP 429\) after 3 attempts/);
    lab.throttleFirst = 0;
  });

  it('a malformed answer is an error naming the CVE and field', async () => {
    lab.malformed.add('CVE-2024-0666');
    await expect(new NvdClient({ baseUrl: url, minIntervalMs: 0, sleep }).fetchScore('CVE-2024-0666')).rejects.toThrow(/NVD CVE-2024-0666: unexpected answer: totalResults/);
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
    const rows = await t.db.any(sql.type(z.object({ errata_id: z.string(), severity: z.string(), cvss_score: z.number().nullable(), severity_source: z.string() }))`
      SELECT errata_id, severity, cvss_score, severity_source FROM errata_cache ORDER BY errata_id`);
    expect(rows).toEqual([
      { errata_id: '7001-1', severity: 'Critical', cvss_score: 9.1, severity_source: 'nvd' },
      { errata_id: '7002-1', severity: 'Low', cvss_score: 3.1, severity_source: 'nvd' },
      { errata_id: '7003-1', severity: 'Medium', cvss_score: null, severity_source: 'uyuni' },
      { errata_id: 'RHBA-2026:0001', severity: 'Low', cvss_score: null, severity_source: 'uyuni' },
    ]);
    const requests = lab.requests;
    expect(await enrichFromNvd(t.db, nvd, silentLogger)).toEqual({ fetched: 0, notFound: 0, errataUpdated: 0, stoppedEarly: null });
    expect(lab.requests).toBe(requests);
  });

  it('a throttled NVD pauses the run without failing it; the rest comes next time', async () => {
    await t.db.query(sql.unsafe`UPDATE errata_cache SET cves = cves || ARRAY['CVE-2024-4000', 'CVE-2024-4001'] WHERE errata_id = '7002-1'`);
    lab.add('CVE-2024-4000', cvssMetric('3.1', 7.2));
    lab.add('CVE-2024-4001', cvssMetric('3.1', 4.4));
    lab.throttleFirst = 100;
    const nvd = new NvdClient({ baseUrl: url, minIntervalMs: 0, throttleBackoffMs: 1, maxThrottleRetries: 1, sleep: async () => undefined });
    const paused = await enrichFromNvd(t.db, nvd, silentLogger);
    expect(paused).toMatchObject({ fetched: 0, errataUpdated: 0 });
    expect(paused.stoppedEarly).toMatch(/throttled/);
    lab.throttleFirst = 0;
    expect(await enrichFromNvd(t.db, nvd, silentLogger)).toMatchObject({ fetched: 2, errataUpdated: 1 });
    expect(await t.db.oneFirst(sql.type(z.object({ s: z.string() }))`SELECT severity AS s FROM errata_cache WHERE errata_id = '7002-1'`)).toBe('High');
  });
});
