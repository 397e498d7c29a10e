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
import { redactPayload } from './machines/host.ts';
import { startActorSystem } from './machines/system.ts';
import { loadThresholds, settingsFrom } from './services/settings.ts';
import { startHttpServer } from './http/server.ts';
import { migrate } from './persistence/migrate.ts';
import { openDatabase } from './persistence/open.ts';
import { Releasers } from './releasers.ts';
import { VERSION } from './version.ts';

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
export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  const releasers = new Releasers();
  const lifecycle: Lifecycle = { state: 'starting' };
  try {
    const { url, db, embedded } = await openDatabase(config, logger, releasers);
    const { applied } = await migrate(url);
    logger.info({ applied, embeddedDatabase: embedded }, applied.length > 0 ? 'migrations applied' : 'schema up to date');

    const deps: BaseDeps = { config, logger, db, version: VERSION, startedAt: Date.now(), lifecycle };

    // Effects: the real UYUNI/Salt/Prometheus test engine is not wired yet; without it every effect
    // is refused and POST /tests/start answers 503. The fake world is a test seam (never in production).
    let ports: PatchPorts;
    let testEngine: { available: boolean; reason: string | null };
    if (config.testFakeWorldUrl !== undefined) {
      // src/lab is test/demo code: loaded only through this seam, which NODE_ENV=production refuses.
      const { fakeWorldHttpPorts } = await import('./lab/fakeWorld.ts');
      ports = fakeWorldHttpPorts(config.testFakeWorldUrl);
      testEngine = { available: true, reason: null };
      logger.warn({ url: config.testFakeWorldUrl }, 'TEST SEAM: effects go to a fake world');
    } else {
      const reason = 'the UYUNI/Salt/Prometheus test engine is not configured in this build';
      ports = unavailablePorts(reason);
      testEngine = { available: false, reason };
    }
    let inspect: ((ev: InspectionEvent) => void) | undefined;
    if (config.inspect.mode === 'websocket') {
      const { createWebSocketInspector } = await import('@statelyai/inspect');
      const inspector = createWebSocketInspector({ url: config.inspect.url, sanitizeContext: (ctx) => redactPayload(ctx) as never });
      inspect = (ev) => inspector.inspect.next?.(ev);
      releasers.add('inspector', () => inspector.stop());
      logger.warn({ url: config.inspect.url }, 'XState inspection is streaming to a local websocket (debugging only)');
    }
    const actors = await startActorSystem({
      db, logger, ownerId: config.instanceId, leaseTtlMs: config.leaseTtlMs, pollMs: config.schedulerPollMs, ports,
      reconcile: !config.testDisableReconcile,
      ...(inspect ? { inspect } : {}),
    });
    releasers.add('actors', () => actors.stop());
    logger.info({ ...actors.hydration, instance: config.instanceId }, 'actors hydrated');

    const app = createApp(deps, [
      queueRoutes({ ...deps, actors: actors.host, clock: actors.clock, settings: async () => settingsFrom(await loadThresholds(db)), testEngine }),
    ]);
    const http = await startHttpServer(app, { host: config.http.host, port: config.http.port });
    releasers.add('http', () => http.close(config.http.shutdownGraceMs));
    lifecycle.state = 'running';
    logger.info({ host: config.http.host, port: http.port, version: VERSION }, 'spm-orchestrator serving');

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
