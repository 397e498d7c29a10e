/**
 * `spm-orchestrator lab` / `npm run lab`: the one-command demo. Starts the embedded PostgreSQL, the
 * lab world — UYUNI (the seed notes' fleet: 2 test groups, 2 test systems, 634 errata, plus two
 * production groups), the Salt API, one node_exporter-style endpoint per system — a real Prometheus
 * scraping them and the daemon's /metrics when Debian's `prometheus` is installed, a lab NVD, an SMTP sink, and the daemon
 * wired to all of it with the real test engine. Prints the API URL and an admin token; the startup
 * sync fills the errata cache, the Security Advisories are queued with their scores, and the test
 * lanes start testing them one by one on the two test systems (short lab waits: seconds).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig, type Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { Releasers } from '../releasers.ts';
import { setConfigValue } from '../persistence/sql/config.ts';
import { insertToken } from '../persistence/sql/tokens.ts';
import { generateToken } from '../services/tokens.ts';
import { ENGINE_LAB_CONFIG, generateFleet, prng, SEED_SCALE } from './fleet.ts';
import { cvssMetric, LabNvd } from './nvd.ts';
import { SmtpSink } from './sinks.ts';
import { LabWorld } from './world.ts';

/** Short waits (seconds) so that a test finishes while you watch; production defaults stay the design's. */
export const LAB_THRESHOLDS = {
  cpu_delta_percent: 20,
  memory_delta_percent: 15,
  max_failed_services: 0,
  wait_after_patch_seconds: 5,
  wait_after_reboot_seconds: 3,
  reboot_timeout_seconds: 120,
  step_timeout_seconds: 600,
  retry_base_seconds: 2,
  retry_max_seconds: 30,
  retry_max_attempts: 8,
  poll_seconds: 1,
  metrics_window_seconds: 10,
};

/**
 * The window judge's windows for the lab (seconds; Prometheus scrapes every 2 s): a minute of
 * baseline and of post window at a 4 s step (15 points each), instead of the production 15 minutes.
 */
export const LAB_CANARY_POLICY = {
  step_seconds: 4,
  baseline_window_seconds: 60,
  post_window_seconds: 60,
  baseline_wait_seconds: 240,
};

/** The seed's fleet plus production groups (waves have somewhere to go). */
export const LAB_SCALE = {
  ...SEED_SCALE,
  groups: [
    ...SEED_SCALE.groups,
    { name: 'prod-ubuntu-web', os: 'ubuntu' as const, systems: 8 },
    { name: 'prod-rhel9-db', os: 'rhel' as const, systems: 4 },
  ],
};

interface LabPrometheus {
  url: string;
  proc: ChildProcess;
  /** Add the daemon's /metrics (job spm-orchestrator, as in prometheus/prometheus.yml) and reload. */
  scrapeDaemon(target: string, token: string | undefined): void;
  stop(): Promise<void>;
}

/** Stop a child: SIGTERM, SIGKILL after `ms`; resolves once it has exited. */
function stopChild(proc: ChildProcess, ms = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), ms);
    proc.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

async function startLabPrometheus(world: LabWorld, dir: string, logger: Logger): Promise<LabPrometheus | null> {
  const bin = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';
  if (!existsSync(bin)) {
    logger.warn(
      { bin },
      'lab: no Prometheus binary (apt-get install prometheus): validation uses Salt service checks only',
    );
    return null;
  }
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'prometheus.yml');
  const nodeJobs = world.prometheusConfig({
    scrapeIntervalS: 2,
    ruleFiles: [path.resolve('prometheus/rules/spm.rules.yml')],
  });
  writeFileSync(configFile, nodeJobs);
  const { createServer } = await import('node:net');
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const proc = spawn(
    bin,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
      '--storage.tsdb.retention.time=2d',
    ],
    { stdio: 'ignore' },
  );
  const url = `http://127.0.0.1:${port}`;
  const handle: LabPrometheus = {
    url,
    proc,
    scrapeDaemon(target, token) {
      // The world's config ends with its scrape_configs list: one more job goes at its end.
      const auth = token ? `    authorization:\n      type: Bearer\n      credentials: '${token}'\n` : '';
      writeFileSync(
        configFile,
        `${nodeJobs}  - job_name: spm-orchestrator\n    metrics_path: /metrics\n    scrape_timeout: 1500ms\n${auth}    static_configs:\n      - targets: ['${target}']\n`,
      );
      proc.kill('SIGHUP'); // Prometheus re-reads its configuration
    },
    stop: () => stopChild(proc),
  };
  for (let i = 0; i < 300; i++) {
    if (proc.exitCode !== null) {
      logger.warn({ code: proc.exitCode }, 'lab: Prometheus exited at start: validation uses Salt service checks only');
      return null;
    }
    try {
      if ((await fetch(`${url}/-/ready`)).ok) return handle;
    } catch {
      /* starting */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await handle.stop();
  return null;
}

/**
 * Start the lab; `stop()` releases everything it started, newest first. A start that fails part-way
 * (e.g. the lab database's port is taken) releases what it had started — its Prometheus, the sinks,
 * the lab servers — before the error is rethrown.
 */
export async function runLab(
  env: Record<string, string | undefined>,
  logger: Logger,
  out: (line: string) => void,
): Promise<{ stop: () => Promise<void> }> {
  const releasers = new Releasers();
  try {
    await startLab(env, logger, out, releasers);
  } catch (raw) {
    await releasers.release(logger);
    throw raw;
  }
  return {
    stop: async () => {
      const err = await releasers.release(logger);
      if (err) throw err;
    },
  };
}

async function startLab(
  env: Record<string, string | undefined>,
  logger: Logger,
  out: (line: string) => void,
  releasers: Releasers,
): Promise<void> {
  const world = new LabWorld(generateFleet(LAB_SCALE), {
    user: 'lab',
    password: 'lab',
    pickupMs: 1000,
    runMs: 3000,
    rebootMs: 5000,
  });
  // A few errata misbehave, so that failures and rollbacks show up in the demo.
  const ubuntuNginx = world.fleet.errata
    .filter((e) => e.os === 'ubuntu' && e.packages.some((p) => p.name === 'nginx-core'))
    .slice(0, 3);
  for (const e of ubuntuNginx) world.scenario(e.advisoryName, { breaksService: 'nginx.service' });
  const rhelHttpd = world.fleet.errata.find((e) => e.os === 'rhel' && e.packages.some((p) => p.name === 'httpd'));
  if (rhelHttpd) world.scenario(rhelHttpd.advisoryName, { cpuRaisePercent: 40 });
  // The web team's own check on each test system (pillar spm:healthchecks → state.apply spm.healthcheck).
  for (const sys of world.fleet.systems.filter((x) => x.group.startsWith('test-'))) {
    const unit = sys.os === 'rhel' ? 'httpd.service' : 'nginx.service';
    world.host(sys.name, { healthchecks: { web: { type: 'http', url: 'http://127.0.0.1/healthz', service: unit } } });
  }
  const urls = await world.start();
  releasers.add('lab world', () => world.stop());
  const nvd = new LabNvd();
  const rand = prng(99);
  for (const e of world.fleet.errata)
    for (const c of e.cves) nvd.add(c, cvssMetric('3.1', Math.round(rand() * 100) / 10));
  const nvdServed = await nvd.serve();
  releasers.add('lab NVD', () => void nvdServed.server.close());
  const smtp = new SmtpSink();
  const mail = await smtp.listen();
  releasers.add('SMTP sink', () => smtp.close());
  const prom = await startLabPrometheus(world, path.resolve(env.LAB_PROMETHEUS_DIR ?? 'var/lab-prometheus'), logger);
  if (prom) releasers.add('lab Prometheus', () => prom.stop());

  // The lab keeps its own database: an embedded cluster under ./var/lab-pg on port 54339
  // (LAB_PG_DIR, LAB_PG_PORT), never what DATABASE_URL, DB_* or EMBEDDED_PG_* (e.g. from .env)
  // configure for `npm start`, so the simulated fleet, errata and tokens never mix with a real one.
  const { DATABASE_URL: _url, DB_HOST: _host, EMBEDDED_PG_DIR: _dir, EMBEDDED_PG_PORT: _port, ...daemonEnv } = env;
  const labDb = { dir: path.resolve(env.LAB_PG_DIR ?? 'var/lab-pg'), port: env.LAB_PG_PORT ?? '54339' };
  const config: Config = parseConfig({
    ...daemonEnv,
    EMBEDDED_PG_DIR: labDb.dir,
    EMBEDDED_PG_PORT: labDb.port,
    NODE_ENV: env.NODE_ENV === 'production' ? 'development' : (env.NODE_ENV ?? 'development'),
    UYUNI_URL: urls.uyuni,
    UYUNI_USER: 'lab',
    UYUNI_PASSWORD: 'lab',
    UYUNI_POLL_INTERVAL_MINUTES: env.UYUNI_POLL_INTERVAL_MINUTES ?? '30',
    SALT_API_URL: urls.salt,
    SALT_USER: 'salt',
    SALT_PASSWORD: 'salt',
    ...(prom ? { PROMETHEUS_URL: prom.url } : {}),
    SMTP_HOST: mail.host,
    SMTP_PORT: String(mail.port),
    NVD_URL: nvdServed.url,
    NVD_API_KEY: 'lab',
  });
  const testSystems = {
    ubuntu: [{ system_id: null, system_name: world.fleet.systems.find((s) => s.group === 'test-ubuntu-2404')!.name }],
    rhel: [{ system_id: null, system_name: world.fleet.systems.find((s) => s.group === 'test-rhel9')!.name }],
  };
  const { startDaemon } = await import('../daemon.ts');
  let token = '';
  let secondApprover = '';
  // The lab's database settings are LAB_PG_*: a start failure that names the daemon's variable
  // would send the user to the wrong knob.
  const labHint = (raw: unknown): never => {
    const err = raw instanceof Error ? raw : new Error(String(raw));
    if (!err.message.includes('EMBEDDED_PG_')) throw err;
    throw new Error(
      err.message.replaceAll('EMBEDDED_PG_PORT', 'LAB_PG_PORT').replaceAll('EMBEDDED_PG_DIR', 'LAB_PG_DIR'),
      { cause: err },
    );
  };
  const daemon = await startDaemon(config, logger, {
    afterMigrate: async (db) => {
      await setConfigValue(db, 'test_thresholds', LAB_THRESHOLDS, 'lab');
      await setConfigValue(db, 'canary_policy', LAB_CANARY_POLICY, 'lab');
      await setConfigValue(db, 'test_systems', testSystems, 'lab');
      await setConfigValue(
        db,
        'critical_services',
        { ...ENGINE_LAB_CONFIG.critical_services, rhel: ['sshd.service', 'crond.service', 'httpd.service'] },
        'lab',
      );
      await setConfigValue(db, 'maintenance_windows', ENGINE_LAB_CONFIG.maintenance_windows, 'lab');
      await setConfigValue(
        db,
        'notification_config',
        {
          email_enabled: true,
          recipients: ['ops@lab.example'],
          webhook_enabled: false,
          webhook_url: '',
          digest_time: '08:00',
        },
        'lab',
      );
      const g = generateToken();
      await insertToken(db, {
        name: 'lab-admin',
        prefix: g.prefix,
        hash: g.hash,
        role: 'admin',
        createdBy: 'lab',
        expiresInDays: 30,
      });
      token = g.token;
      // A Critical errata needs two distinct approvers (approval_policy): a second person for the demo.
      const a = generateToken();
      await insertToken(db, {
        name: 'lab-approver',
        prefix: a.prefix,
        hash: a.hash,
        role: 'approver',
        createdBy: 'lab',
        expiresInDays: 30,
      });
      secondApprover = a.token;
    },
  }).catch(labHint);
  releasers.add('daemon', () => daemon.stop());
  const scrapeHost = ['0.0.0.0', '::'].includes(config.http.host) ? '127.0.0.1' : config.http.host;
  const metricsTarget = `${scrapeHost.includes(':') ? `[${scrapeHost}]` : scrapeHost}:${daemon.port}`;
  prom?.scrapeDaemon(metricsTarget, config.metrics.token);
  const base = `http://${config.http.host}:${daemon.port}/api/v1`;
  out(`SPM Orchestrator lab is running`);
  out(
    `lab database: embedded PostgreSQL ${labDb.dir} on 127.0.0.1:${labDb.port} (LAB_PG_DIR, LAB_PG_PORT; npm start's ./var/pg is not touched)`,
  );
  out(`Dashboard: http://${config.http.host}:${daemon.port}/ui   (sign in with the admin token below)`);
  out(`API: ${base}   (OpenAPI: docs/openapi.yaml)`);
  out(`admin token: ${token}`);
  out(`second approver token: ${secondApprover}   (a Critical errata needs two distinct approvers)`);
  out(`try: curl -s -H "Authorization: Bearer ${token}" ${base}/queue | head -c 600`);
  out(`     curl -s -H "Authorization: Bearer ${token}" ${base}/lanes`);
  out(
    `     curl -s ${config.metrics.token ? '-H "Authorization: Bearer $METRICS_TOKEN" ' : ''}http://${metricsTarget}/metrics | grep ^spm_${prom ? `   (the lab's Prometheus scrapes it: job spm-orchestrator)` : ''}`,
  );
  out(
    `lab UYUNI ${urls.uyuni} (lab/lab) · Salt ${urls.salt} (salt/salt) · metrics ${urls.metrics}/systems/<name>/metrics · ${prom ? `Prometheus ${prom.url}` : 'no Prometheus (Salt checks only)'} · SMTP sink ${mail.host}:${mail.port}`,
  );
  out(
    `fleet: ${world.fleet.errata.length} errata, ${world.fleet.systems.length} systems (test: ${testSystems.ubuntu[0]!.system_name}, ${testSystems.rhel[0]!.system_name}); ${ubuntuNginx.length} errata break nginx on purpose`,
  );
}
