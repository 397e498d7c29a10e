/**
 * UYUNI sync against the lab UYUNI (XML-RPC over loopback, behaving as the reference describes).
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { generateFleet, LARGE_SCALE, SEED_SCALE } from '../src/lab/fleet.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { osFromGroup, SyncAlreadyRunning, UyuniSync } from '../src/services/uyuni/sync.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { freePort } from './helpers/proc.ts';

type TestDb = Awaited<ReturnType<typeof createTestDatabase>>;

function clientFor(url: string, opts: { timeoutMs?: number; workers?: number } = {}) {
  return new UyuniClient({
    url,
    user: 'admin',
    password: 'admin',
    verifySsl: true,
    timeoutMs: opts.timeoutMs ?? 5000,
    syncWorkers: opts.workers ?? 10,
  });
}
async function cacheDigest(db: TestDb['db']) {
  return db.oneFirst(sql.type(z.object({ d: z.string().nullable() }))`
    SELECT md5(string_agg(errata_id || coalesce(errata_version, '') || array_to_string(cves, ',') || coalesce(description, ''), '|' ORDER BY errata_id)) AS d FROM errata_cache`);
}

describe('osFromGroup', () => {
  it('derives the OS from the group name', () => {
    expect(
      ['test-ubuntu-2404', 'test-rhel9', 'prod-debian-12', 'test-rocky9', 'test-windows'].map(osFromGroup),
    ).toEqual(['ubuntu', 'rhel', 'debian', 'rhel', null]);
  });
});

describe('sync at the seed scale (2 test groups, 2 systems, 634 errata)', () => {
  let t: TestDb;
  let lab: LabUyuni;
  let url: string;
  beforeAll(async () => {
    t = await createTestDatabase();
    lab = new LabUyuni(generateFleet(SEED_SCALE));
    url = await lab.serve();
  });
  afterAll(async () => {
    await lab.close();
    await t.drop();
  });

  it('caches every relevant errata with one login and one logout, CVEs only for Security Advisories', async () => {
    const sync = new UyuniSync({ db: t.db, logger: silentLogger, uyuni: clientFor(url), prefixes: ['test-'] });
    const r = await sync.run('api');
    expect(r).toMatchObject({
      status: 'completed',
      groups: 2,
      systems: 2,
      logins: 1,
      logouts: 1,
      errata: { total: 634, new: 634, updated: 0, unchanged: 0 },
    });
    const security = lab.fleet.errata.filter((e) => e.type === 'Security Advisory').length;
    expect(r.calls).toEqual({
      'auth.login': 1,
      'systemgroup.listAllGroups': 1,
      'systemgroup.listSystemsMinimal': 2,
      'system.getRelevantErrata': 2,
      'errata.listCves': security,
      'auth.logout': 1,
    });
    const rows = await t.db.any(sql.type(
      z.object({
        errata_id: z.string(),
        target_os: z.string(),
        severity: z.string(),
        advisory_type: z.string(),
        cves: z.array(z.string()),
      }),
    )`
      SELECT errata_id, target_os, severity, advisory_type, cves FROM errata_cache`);
    expect(rows).toHaveLength(634);
    const usn = rows.find((x) => x.target_os === 'ubuntu')!;
    expect(usn.errata_id).toMatch(/^\d+-\d+$/); // USN stored without its prefix
    expect(
      rows
        .filter((x) => x.advisory_type === 'Security Advisory')
        .every((x) => x.severity === 'Medium' && x.cves.length > 0),
    ).toBe(true);
    expect(
      rows
        .filter((x) => x.advisory_type !== 'Security Advisory')
        .every((x) => x.severity === 'Low' && x.cves.length === 0),
    ).toBe(true);
    expect(rows.some((x) => /^RHSA-2026:\d{4}$/.test(x.errata_id))).toBe(true);
  });

  it('a second sync with no changes makes no CVE call and changes nothing', async () => {
    const digest = await cacheDigest(t.db);
    const r = await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: clientFor(url), prefixes: ['test-'] }).run(
      'api',
    );
    expect(r.errata).toEqual({ total: 634, new: 0, updated: 0, unchanged: 634 });
    expect(r.calls['errata.listCves']).toBeUndefined();
    expect(await cacheDigest(t.db)).toBe(digest);
  });

  it('detects a changed errata version and never overwrites a description', async () => {
    const victim = lab.fleet.errata[5]!.advisoryName;
    await t.db.query(
      sql.unsafe`UPDATE errata_cache SET description = 'fetched on demand earlier' WHERE errata_id = ${victim}`,
    );
    lab.bumpErrata(victim, '2026-11-21 09:30:00');
    const r = await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: clientFor(url), prefixes: ['test-'] }).run(
      'api',
    );
    expect(r.versionChanged).toEqual([victim]);
    expect(r.errata).toMatchObject({ updated: 1, new: 0 });
    const row = await t.db.one(
      sql.type(
        z.object({ errata_version: z.string(), description: z.string() }),
      )`SELECT errata_version, description FROM errata_cache WHERE errata_id = ${victim}`,
    );
    expect(row).toEqual({ errata_version: '2026-11-21 09:30:00', description: 'fetched on demand earlier' });
  });

  it('faults, malformed replies and refused connections are recorded errors that leave the cache as it was', async () => {
    const digest = await cacheDigest(t.db);
    const run = () =>
      new UyuniSync({ db: t.db, logger: silentLogger, uyuni: clientFor(url), prefixes: ['test-'] }).run('api');

    lab.failNext.set('system.getRelevantErrata', { code: -208, message: 'No such system' });
    const noSystem = await run();
    expect(noSystem).toMatchObject({ status: 'failed', logins: 1, logouts: 1 });
    expect(noSystem.error).toMatch(/system\.getRelevantErrata: fault -208: No such system/);

    lab.failNext.set('systemgroup.listAllGroups', 'malformed');
    expect((await run()).error).toMatch(/systemgroup\.listAllGroups: unreadable reply/);

    const closed = await freePort();
    const refused = await new UyuniSync({
      db: t.db,
      logger: silentLogger,
      uyuni: clientFor(`http://127.0.0.1:${closed}`),
      prefixes: ['test-'],
    }).run('api');
    expect(refused.error).toMatch(/auth\.login: ECONNREFUSED/);

    expect(await cacheDigest(t.db)).toBe(digest);
    const runs = await t.db.any(
      sql.type(
        z.object({ status: z.string(), error: z.string().nullable() }),
      )`SELECT status, error FROM sync_runs ORDER BY id DESC LIMIT 3`,
    );
    expect(runs.map((x) => x.status)).toEqual(['failed', 'failed', 'failed']);
  });

  it('an expired session logs in again once and the sync completes; a dropped connection is retried', async () => {
    lab.failNext.set('systemgroup.listSystemsMinimal', { code: -1, message: 'Could not find session with id: 4' });
    const r = await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: clientFor(url), prefixes: ['test-'] }).run(
      'api',
    );
    expect(r).toMatchObject({ status: 'completed', logins: 2, logouts: 1 });
    lab.failNext.set('system.getRelevantErrata', 'drop');
    expect(
      (await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: clientFor(url), prefixes: ['test-'] }).run('api'))
        .status,
    ).toBe('completed');
  });

  it('a slow UYUNI times out and the run fails cleanly; only one sync runs at a time', async () => {
    const slow = new LabUyuni(generateFleet(SEED_SCALE), { latencyMs: 300 });
    const slowUrl = await slow.serve();
    try {
      const r = await new UyuniSync({
        db: t.db,
        logger: silentLogger,
        uyuni: clientFor(slowUrl, { timeoutMs: 100 }),
        prefixes: ['test-'],
      }).run('api');
      expect(r.error).toMatch(/auth\.login: no answer within 100 ms/);
      const sync = new UyuniSync({
        db: t.db,
        logger: silentLogger,
        uyuni: clientFor(slowUrl, { timeoutMs: 5000 }),
        prefixes: ['test-'],
      });
      const first = sync.run('api');
      await expect(sync.run('api')).rejects.toBeInstanceOf(SyncAlreadyRunning);
      expect((await first).status).toBe('completed');
    } finally {
      await slow.close();
    }
  });
});

describe('sync of a large fleet (50 groups, 2,000 systems, 5,000 errata)', () => {
  it('completes with one session and the calls it must make', async () => {
    const t = await createTestDatabase();
    const lab = new LabUyuni(generateFleet(LARGE_SCALE));
    const url = await lab.serve();
    try {
      const r = await new UyuniSync({
        db: t.db,
        logger: silentLogger,
        uyuni: clientFor(url, { workers: 10 }),
        prefixes: ['test-', 'prod-'],
      }).run('api');
      expect(r).toMatchObject({ status: 'completed', groups: 50, systems: 2000, logins: 1, logouts: 1 });
      expect(r.errata.total).toBe(5000);
      expect(r.calls['system.getRelevantErrata']).toBe(2000);
      const again = await new UyuniSync({
        db: t.db,
        logger: silentLogger,
        uyuni: clientFor(url, { workers: 10 }),
        prefixes: ['test-', 'prod-'],
      }).run('api');
      expect(again.errata.unchanged).toBe(5000);
      expect(again.calls['errata.listCves']).toBeUndefined();
    } finally {
      await lab.close();
      await t.drop();
    }
  }, 120_000);
});
