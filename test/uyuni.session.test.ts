/**
 * UYUNI sessions per cycle, against the lab UYUNI with its call log on:
 * - a sync whose risk profiling of the errata it queued runs in its `after` hook uses one session
 *   (one auth.login, one auth.logout) for all of it;
 * - a sync that fails part-way stops its workers: nothing is sent after the logout, no re-login,
 *   no session left open on the server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFleet, type FleetSpec } from '../src/lab/fleet.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { UyuniSync } from '../src/services/uyuni/sync.ts';
import { profileErrata } from '../src/services/riskProfile.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

const SPEC: FleetSpec = {
  seed: 11,
  groups: [
    { name: 'test-ubuntu-2404', os: 'ubuntu', systems: 40 },
    { name: 'test-rhel9', os: 'rhel', systems: 20 },
  ],
  errata: { ubuntu: 120, debian: 0, rhel: 80 },
  relevantPerSystem: 30,
};

let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

async function withLab<T>(
  opts: { latencyMs?: number },
  fn: (lab: LabUyuni, client: UyuniClient) => Promise<T>,
): Promise<T> {
  const lab = new LabUyuni(generateFleet(SPEC), { latencyMs: opts.latencyMs ?? 0 });
  lab.recordCalls = true;
  const url = await lab.serve();
  try {
    return await fn(
      lab,
      new UyuniClient({ url, user: 'admin', password: 'admin', verifySsl: true, timeoutMs: 5000, syncWorkers: 4 }),
    );
  } finally {
    await lab.close();
  }
}

describe('UYUNI: one session per cycle', () => {
  it('the sync and the profiling of the errata it queued share one login and one logout', async () => {
    await withLab({}, async (lab, client) => {
      let profiled = 0;
      const r = await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: client, prefixes: ['test-'] }).run('api', {
        after: async (report) => {
          profiled = (await profileErrata(t.db, report.newErrata.slice(0, 25), client)).size;
        },
      });
      expect(r).toMatchObject({ status: 'completed', logins: 1, logouts: 1 });
      expect(profiled).toBe(25);
      expect(lab.count('errata.listPackages')).toBe(25);
      expect({ logins: lab.logins, logouts: lab.logouts }).toEqual({ logins: 1, logouts: 1 });
      expect(lab.callLog.at(-1)!.method).toBe('auth.logout');
      expect(new Set(lab.callLog.filter((c) => c.key !== null).map((c) => c.key)).size).toBe(1);
    });
  });

  it('a sync that fails part-way stops its workers: no call after the logout, no re-login, no leaked session', async () => {
    await withLab({ latencyMs: 30 }, async (lab, client) => {
      lab.failNext.set('system.getRelevantErrata', { code: -208, message: 'No such system' });
      const r = await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: client, prefixes: ['test-'] }).run('api');
      expect(r.status).toBe('failed');
      expect(r.error).toMatch(/getRelevantErrata: fault -208/);
      const seen = lab.callLog.length;
      await new Promise((res) => setTimeout(res, 500)); // workers that went on would call now
      expect(lab.callLog.length).toBe(seen);
      const logoutAt = lab.callLog.findIndex((c) => c.method === 'auth.logout');
      expect(logoutAt).toBe(lab.callLog.length - 1);
      // Of the 60 systems' calls only those already on the wire were sent: the 4 workers' and the
      // one that took the failed call's slot before the failure reached the session.
      expect(lab.count('system.getRelevantErrata')).toBeLessThanOrEqual(5);
      expect({ logins: lab.logins, logouts: lab.logouts, relogins: client.stats.relogins }).toEqual({
        logins: 1,
        logouts: 1,
        relogins: 0,
      });
    });
  });

  it('a nested withSession reuses the outer session; after the outer one ended it logs in on its own', async () => {
    await withLab({}, async (lab, client) => {
      let later: Promise<unknown> = Promise.resolve();
      await client.withSession(async (outer) => {
        await outer.listAllGroups();
        await client.withSession((inner) => inner.listAllGroups());
        later = new Promise((res) => setTimeout(res, 50)).then(() => client.withSession((s) => s.listAllGroups()));
      });
      expect({ logins: lab.logins, logouts: lab.logouts }).toEqual({ logins: 1, logouts: 1 });
      await later;
      expect({ logins: lab.logins, logouts: lab.logouts }).toEqual({ logins: 2, logouts: 2 });
    });
  });
});
