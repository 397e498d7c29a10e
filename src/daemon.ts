/**
 * The daemon (`serve`): database, migrations, HTTP API, and — as they are built — the actor host
 * and the scheduler. This is the composition root: the only place that knows how parts are wired.
 */
import type { Config } from './config.ts';
import type { BaseDeps, Lifecycle } from './interfaces.ts';
import type { Logger } from './logger.ts';
import type { InspectionEvent } from 'xstate';
import { createApp } from './http/app.ts';
import { queueRoutes } from './http/routes/queue.ts';
import { unavailablePorts, type PatchPorts } from './machines/effects.ts';
import { redactPayload } from './redact.ts';
import { DbClock } from './persistence/clock.ts';
import { startActorSystem } from './machines/system.ts';
import { loadSnapshotRetention, loadTestSystems, loadThresholds, settingsFrom } from './services/settings.ts';
import { syncRoutes } from './http/routes/sync.ts';
import { riskProfileRoutes } from './http/routes/riskProfile.ts';
import { failInterruptedSyncRuns } from './persistence/sql/errata.ts';
import { autoQueueAfterSync } from './scheduler/autoQueue.ts';
import { SyncPoller } from './scheduler/poller.ts';
import { type SyncReport, UyuniSync } from './services/uyuni/sync.ts';
import { NvdClient } from './services/nvd/client.ts';
import { enrichFromNvd } from './services/nvd/enrich.ts';
import { profileErrata } from './services/riskProfile.ts';
import { UyuniClient } from './services/uyuni/client.ts';
import { SaltClient } from './services/salt/client.ts';
import { PrometheusClient } from './services/prometheus/client.ts';
import { createEnginePorts } from './engine/index.ts';
import { Notifier } from './scheduler/notifier.ts';
import { TestLanes } from './scheduler/lanes.ts';
import { RollbackRunner } from './scheduler/rollbacks.ts';
import { deploymentRoutes } from './http/routes/deployments.ts';
import { dashboardRoutes } from './http/dashboard/index.ts';
import { reportRoutes } from './http/routes/reports.ts';
import { coerceError } from './errors.ts';
import { startHttpServer } from './http/server.ts';
import { acquireInstanceLock } from './persistence/instanceLock.ts';
import { startAuditAnchors } from './persistence/auditAnchors.ts';
import { Leadership } from './persistence/leadership.ts';
import { enqueueAlert } from './services/alerts.ts';
import { testSystemKnownToUyuni } from './services/testSystems.ts';
import { SnapshotCleanup } from './scheduler/snapshotCleanup.ts';
import { migrate } from './persistence/migrate.ts';
import { openDatabase } from './persistence/open.ts';
import { flushTokenUse } from './persistence/sql/tokenUse.ts';
import { Releasers } from './releasers.ts';
import { VERSION } from './version.ts';
import { instrumentPorts, OrchestratorMetrics } from './services/metrics.ts';
import { metricsRoutes } from './http/routes/metrics.ts';
import { measureRequests } from './http/requestMetrics.ts';
import { superviseBySystemd } from './services/systemd/notify.ts';

export interface Daemon {
  port: number;
  deps: BaseDeps;
  /** Graceful stop: stop accepting, finish in-flight work, flush, close pool, stop embedded DB. */
  stop(): Promise<void>;
}

/**
 * Start everything; on a failure part-way, what was started is released before rethrowing.
 * @example
 * const daemon = await startDaemon(config, logger); … await daemon.stop();
 */
/**
 * Effects supplied by the caller instead of the real engine built from the configuration: the
 * process tests pass a fake world this way (test/helpers/fakeWorldServe.ts). Production never does.
 */
export interface SuppliedEngine {
  ports: PatchPorts;
  /** Reconcile before re-running an effect (off only for the chaos harness's control run). */
  reconcile: boolean;
  /** Whether the test lanes start queued entries on their own (off: the caller starts tests). */
  lanes: boolean;
  /** Said in the log at start, e.g. "fake world at http://127.0.0.1:…". */
  description: string;
}

export interface DaemonOptions {
  engine?: SuppliedEngine;
  afterMigrate?: (db: BaseDeps['db']) => Promise<void>;
}

export async function startDaemon(config: Config, logger: Logger, hooks: DaemonOptions = {}): Promise<Daemon> {
  const releasers = new Releasers();
  const lifecycle: Lifecycle = { state: 'starting' };
  try {
    const { url, db, embedded } = await openDatabase(config, logger, releasers);
    // API token uses are written once a minute (persistence/sql/tokenUse.ts): the last ones at a stop, before the pool closes.
    releasers.add('token-use', async () => void (await flushTokenUse(db)));
    const { applied } = await migrate(url);
    logger.info(
      { applied, embeddedDatabase: embedded },
      applied.length > 0 ? 'migrations applied' : 'schema up to date',
    );
    await hooks.afterMigrate?.(db);
    // Before any entry is claimed: a second process with this INSTANCE_ID would take them all over.
    const instanceLock = await acquireInstanceLock(url, config.instanceId, logger, (why) => {
      logger.fatal({ instance: config.instanceId }, `${why}: stopping`);
      process.exitCode = 1;
      process.kill(process.pid, 'SIGTERM');
    });
    releasers.add('instance-lock', () => instanceLock.release());
    // The audit chain heads anchored every 5 minutes, and at shutdown once HTTP and the actors stopped.
    const anchors = startAuditAnchors(db, logger, config.instanceId);
    releasers.add('audit-anchor', () => anchors.stop());
    // Singleton work (sync polling, notification delivery, rollback jobs, each test lane) runs on
    // one replica at a time: the one that holds the role's lock.
    const leadership = new Leadership({ url, logger, instanceId: config.instanceId });
    releasers.add('leadership', () => leadership.stop());

    const deps: BaseDeps = { config, logger, db, version: VERSION, startedAt: Date.now(), lifecycle };
    const metrics = new OrchestratorMetrics({ db, logger });
    // One clock, the database's: the machine's deadlines and the engine's windows and reboots.
    const clock = new DbClock(db);
    await clock.start();
    releasers.add('clock', () => clock.stop());

    // Effects: the caller's engine when it supplies one, else the real test engine (UYUNI + Salt,
    // Prometheus when configured) when UYUNI and Salt are configured; without them every effect is
    // refused and POST /tests/start answers 503.
    let ports: PatchPorts;
    let testEngine: { available: boolean; reason: string | null };
    const uyuni = config.uyuni ? new UyuniClient({ ...config.uyuni }) : undefined;
    const salt = config.salt
      ? new SaltClient({
          url: config.salt.url,
          user: config.salt.user,
          password: config.salt.password,
          eauth: config.salt.eauth,
        })
      : undefined;
    const prometheus = config.prometheus ? new PrometheusClient(config.prometheus) : undefined;
    const notifier = new Notifier({
      db,
      logger,
      smtp: config.smtp,
      webhookSecret: config.webhookSecret,
      lead: () => leadership.leads('notifier'),
    });
    notifier.start();
    releasers.add('notifier', () => notifier.stop());
    let lanesEnabled = false;
    let reconcile = true;
    if (hooks.engine) {
      ({ ports, reconcile, lanes: lanesEnabled } = hooks.engine);
      testEngine = { available: true, reason: null };
      logger.warn({ engine: hooks.engine.description }, 'effects go to an engine supplied by the caller');
    } else if (uyuni && salt) {
      ports = createEnginePorts({ db, logger, clock, uyuni, salt, prometheus, onNotify: () => notifier.nudge() });
      testEngine = { available: true, reason: null };
      lanesEnabled = true;
      releasers.add('uyuni-session', () => uyuni.closeShared());
      if (!prometheus)
        logger.warn('PROMETHEUS_URL is not set: validation uses Salt service checks only (no CPU/memory evidence)');
    } else {
      const reason = `the test engine needs ${!uyuni ? 'UYUNI_URL' : 'SALT_API_URL'} (UYUNI and the Salt API)`;
      ports = unavailablePorts(reason);
      testEngine = { available: false, reason };
    }
    let inspect: ((ev: InspectionEvent) => void) | undefined;
    if (config.inspect.mode === 'websocket') {
      const { createWebSocketInspector } = await import('@statelyai/inspect');
      const inspector = createWebSocketInspector({
        url: config.inspect.url,
        sanitizeContext: (ctx) => redactPayload(ctx) as never,
      });
      inspect = (ev) => inspector.inspect.next?.(ev);
      releasers.add('inspector', () => inspector.stop());
      logger.warn({ url: config.inspect.url }, 'XState inspection is streaming to a local websocket (debugging only)');
    }
    const actors = await startActorSystem({
      db,
      logger,
      ownerId: config.instanceId,
      leaseTtlMs: config.leaseTtlMs,
      pollMs: config.schedulerPollMs,
      clock,
      ports: instrumentPorts(ports, metrics),
      reconcile,
      listenUrl: url,
      metrics,
      ...(inspect ? { inspect } : {}),
    });
    releasers.add('actors', () => actors.stop());
    logger.info({ ...actors.hydration, instance: config.instanceId }, 'actors hydrated');

    // UYUNI: the sync poller (one run at start, then every UYUNI_POLL_INTERVAL_MINUTES), NVD
    // enrichment after each sync (never blocking it), auto-queue policy, risk profiles on queueing.
    const settings = async () => settingsFrom(await loadThresholds(db));
    // Test lanes: one per configured test system, filled by success score (unless the caller's
    // engine starts its tests itself).
    const lanes = lanesEnabled
      ? new TestLanes({
          db,
          logger,
          actors: actors.host,
          salt,
          pollMs: config.schedulerPollMs,
          lead: (role) => leadership.leads(role),
          checks: [...(uyuni ? [(system: string) => testSystemKnownToUyuni(db, system)] : [])],
          onPause: async (lane, reason) => {
            await enqueueAlert(db, {
              type: 'needs_attention',
              key: `lane-paused:${lane.system}:${Date.now()}`,
              errataId: null,
              queueId: null,
              subject: `Test lane paused: ${lane.system}`,
              body: `The ${lane.os} test lane on ${lane.system} paused: ${reason}\nQueued entries wait; the lane resumes by itself once this is fixed.`,
            });
            notifier.nudge();
          },
        })
      : undefined;
    if (lanes) {
      lanes.start();
      releasers.add('test-lanes', () => lanes.stop());
    }
    // Old test snapshots go once their entry ended and the retention passed (one replica does it).
    if (salt && lanesEnabled) {
      const cleanup = new SnapshotCleanup({
        db,
        logger,
        salt,
        lead: () => leadership.leads('snapshot-cleanup'),
        keepDays: async () => (await loadSnapshotRetention(db)).keep_days_after_final,
        testSystems: async () => Object.values(await loadTestSystems(db)).flatMap((l) => l.map((s) => s.system_name)),
        metrics,
      });
      cleanup.start();
      releasers.add('snapshot-cleanup', () => cleanup.stop());
    }
    const rollbacks = testEngine.available
      ? new RollbackRunner({
          db,
          logger,
          ports,
          pollMs: Math.max(1000, config.schedulerPollMs * 5),
          lead: () => leadership.leads('rollback-runner'),
        })
      : undefined;
    if (rollbacks) {
      rollbacks.start();
      releasers.add('rollback-runner', () => rollbacks.stop());
    }
    const profile = uyuni ? (ids: string[]) => profileErrata(db, ids, uyuni) : undefined;
    const queueDeps = { db, logger, actors: actors.host, settings, profile };
    let sync: UyuniSync | undefined;
    let afterSync: ((report: SyncReport) => Promise<void>) | undefined;
    if (config.uyuni && uyuni) {
      sync = new UyuniSync({
        db,
        logger,
        uyuni,
        prefixes: [config.uyuni.testGroupPrefix, config.uyuni.prodGroupPrefix],
        testPrefix: config.uyuni.testGroupPrefix,
      });
      const nvd = config.nvd.enabled ? new NvdClient({ baseUrl: config.nvd.url, apiKey: config.nvdApiKey }) : undefined;
      let enriching = false;
      // After every sync, polled or asked for (POST /sync/trigger), inside its UYUNI session: auto-queue,
      // wake the lanes, NVD enrichment in the background (never blocking the sync).
      const after = async (report: SyncReport) => {
        const q = await autoQueueAfterSync(queueDeps, report).catch((raw) => {
          logger.error({ err: coerceError(raw).message }, 'auto-queue after sync failed');
          return null;
        });
        if (q && (q.queued > 0 || q.requeued > 0)) logger.info(q, 'auto-queued errata after sync');
        lanes?.nudge();
        if (nvd && !enriching) {
          enriching = true;
          void enrichFromNvd(db, nvd, logger)
            .then(
              (r) => logger.info(r, 'NVD enrichment finished'),
              (raw) => logger.warn({ err: coerceError(raw).message }, 'NVD enrichment failed'),
            )
            .finally(() => (enriching = false));
        }
      };
      afterSync = after;
      const poller = new SyncPoller({
        sync,
        logger,
        intervalMs: config.uyuni.pollIntervalMinutes * 60_000,
        // Only the leader polls; on taking the lead it fails the runs its predecessor left running.
        lead: () => leadership.leads('sync-poller'),
        onLead: async () => void (await failInterruptedSyncRuns(db)),
        afterSync: after,
      });
      poller.start();
      releasers.add('sync-poller', () => poller.stop());
    }

    metrics.observe({ actors: actors.host, lanes });
    const app = createApp(
      deps,
      [
        queueRoutes({ ...deps, actors: actors.host, clock: actors.clock, settings, testEngine, profile }),
        syncRoutes({ ...deps, sync, afterSync }),
        riskProfileRoutes({ ...deps, uyuni }),
        deploymentRoutes({ ...deps, actors: actors.host, lanes, rollbacks }),
        reportRoutes(deps),
      ],
      [
        (root) => dashboardRoutes(deps, root),
        metricsRoutes({ ...deps, metrics }),
        measureRequests(metrics.httpDuration),
      ],
    );
    const http = await startHttpServer(app, { host: config.http.host, port: config.http.port });
    releasers.add('http', () => http.close(config.http.shutdownGraceMs));
    lifecycle.state = 'running';
    logger.info({ host: config.http.host, port: http.port, version: VERSION }, 'spm-orchestrator serving');
    releasers.add('systemd', superviseBySystemd({ logger, status: () => metrics.statusLine() }));

    return {
      port: http.port,
      deps,
      async stop() {
        lifecycle.state = 'stopping';
        const err = await releasers.release(logger);
        lifecycle.state = 'stopped';
        if (err) throw err;
      },
    };
  } catch (raw) {
    lifecycle.state = 'stopping';
    await releasers.release(logger);
    throw raw;
  }
}
