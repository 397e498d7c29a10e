/**
 * The daemon (`serve`): database, migrations, HTTP API, and — as they are built — the actor host
 * and the scheduler. This is the composition root: the only place that knows how parts are wired.
 */
import type { Config } from './config.ts';
import type { BaseDeps, Lifecycle } from './interfaces.ts';
import type { Logger } from './logger.ts';
import { createApp } from './http/app.ts';
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
    const app = createApp(deps);
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
