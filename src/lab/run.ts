/**
 * `spm-orchestrator lab` / `npm run lab`: the one-command demo. Starts the embedded PostgreSQL, a
 * lab UYUNI (the seed notes' fleet: 2 test groups, 2 systems, 634 errata) and a lab NVD, and the
 * daemon wired to them; prints the API URL and an admin token; the daemon's startup sync fills the
 * errata cache and queues the Security Advisories with their scores.
 *
 * Test effects (snapshot, apply, reboot, validate, …) go to the in-process fake world until the lab
 * has its Salt API and per-system metrics (issue 5): tests run, but nothing here is a real system.
 */
import { parseConfig, type Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { setConfigValue } from '../persistence/sql/config.ts';
import { insertToken } from '../persistence/sql/tokens.ts';
import { generateToken } from '../services/tokens.ts';
import { FakeWorld } from './fakeWorld.ts';
import { generateFleet, SEED_SCALE } from './fleet.ts';
import { cvssMetric, LabNvd } from './nvd.ts';
import { prng } from './fleet.ts';
import { LabUyuni } from './uyuni.ts';

/** Short waits (seconds) so that a test finishes while you watch; production defaults stay the design's. */
export const LAB_THRESHOLDS = {
  cpu_delta_percent: 20, memory_delta_percent: 15, max_failed_services: 0,
  wait_after_patch_seconds: 5, wait_after_reboot_seconds: 3, reboot_timeout_seconds: 60, step_timeout_seconds: 300,
  retry_base_seconds: 2, retry_max_seconds: 30, retry_max_attempts: 8,
};

export async function runLab(env: Record<string, string | undefined>, logger: Logger, out: (line: string) => void): Promise<{ stop: () => Promise<void> }> {
  const fleet = generateFleet(SEED_SCALE);
  const uyuni = new LabUyuni(fleet, { user: 'lab', password: 'lab' });
  const uyuniUrl = await uyuni.serve();
  const nvd = new LabNvd();
  const rand = prng(99);
  for (const e of fleet.errata) for (const c of e.cves) nvd.add(c, cvssMetric('3.1', Math.round(rand() * 100) / 10));
  const nvdServed = await nvd.serve();
  const world = new FakeWorld({ latencyMs: 300 });
  const worldServed = await world.serve();

  const config: Config = parseConfig({
    ...env,
    NODE_ENV: env.NODE_ENV === 'production' ? 'development' : (env.NODE_ENV ?? 'development'),
    UYUNI_URL: uyuniUrl, UYUNI_USER: 'lab', UYUNI_PASSWORD: 'lab', UYUNI_POLL_INTERVAL_MINUTES: env.UYUNI_POLL_INTERVAL_MINUTES ?? '30',
    NVD_URL: nvdServed.url, NVD_API_KEY: 'lab', SPM_TEST_FAKE_WORLD_URL: worldServed.url,
  });
  const { startDaemon } = await import('../daemon.ts');
  let token = '';
  const daemon = await startDaemon(config, logger, {
    afterMigrate: async (db) => {
      await setConfigValue(db, 'test_thresholds', LAB_THRESHOLDS, 'lab');
      const g = generateToken();
      await insertToken(db, { name: 'lab-admin', prefix: g.prefix, hash: g.hash, role: 'admin', createdBy: 'lab', expiresInDays: 30 });
      token = g.token;
    },
  });
  const base = `http://${config.http.host}:${daemon.port}/api/v1`;
  out(`SPM Orchestrator lab is running`);
  out(`API: ${base}   (OpenAPI: docs/openapi.yaml)`);
  out(`admin token: ${token}`);
  out(`try: curl -s -H "Authorization: Bearer ${token}" ${base}/queue | head -c 600`);
  out(`lab UYUNI ${uyuniUrl} (user lab/lab, ${fleet.errata.length} errata, ${fleet.systems.length} test systems); test effects: fake world (not real systems)`);
  return {
    stop: async () => {
      await daemon.stop();
      worldServed.server.close();
      nvdServed.server.close();
      await uyuni.close();
    },
  };
}
