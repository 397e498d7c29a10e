/**
 * Signals and the daemon's shutdown on them (STYLE rule 7): the first signal starts a graceful
 * stop, a second one forces exit.
 *
 * - The handlers are installed before the daemon starts: a SIGTERM while it is still starting
 *   (embedded PostgreSQL, migrations) is kept and the daemon is stopped as soon as it is up,
 *   instead of Node dying at once and leaving the database it started running.
 * - A repeat within a second is the same request, not an impatient second one: Ctrl-C under
 *   `npm start` reaches the daemon twice (from the terminal, to the whole process group, and from
 *   npm, which forwards SIGINT and SIGTERM to its child).
 */
import { coerceError } from './errors.ts';
import type { Logger } from './logger.ts';

/** Signals that start a graceful shutdown; a second one forces exit. */
export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** A repeat closer than this to the first signal is not a "second signal". */
export const REPEAT_WINDOW_MS = 1000;

export async function flushLogger(logger: Logger): Promise<void> {
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
}

export interface Stoppable {
  stop(): Promise<void>;
}

export interface ShutdownControl {
  /** The daemon is up: stop it on the first signal (at once if one came while it started). */
  started(daemon: Stoppable): void;
}

/**
 * Install the shutdown handlers now, before starting; hand the daemon over once it is up.
 * Exit 0 after a clean stop, 1 when the stop failed or on a second signal.
 * @example
 * const shutdown = handleShutdownSignals(logger);
 * shutdown.started(await startDaemon(config, logger));
 */
export function handleShutdownSignals(logger: Logger): ShutdownControl {
  let daemon: Stoppable | undefined;
  let requested: { signal: string; at: number } | undefined;
  let stopping = false;

  const stop = (d: Stoppable) => {
    if (stopping) return;
    stopping = true;
    d.stop().then(
      async () => {
        logger.info('stopped');
        await flushLogger(logger);
        process.exit(0);
      },
      async (raw) => {
        logger.error({ err: coerceError(raw) }, 'shutdown finished with errors');
        await flushLogger(logger);
        process.exit(1);
      },
    );
  };

  for (const signal of SHUTDOWN_SIGNALS) {
    process.on(signal, () => {
      if (requested) {
        if (Date.now() - requested.at < REPEAT_WINDOW_MS) return;
        logger.warn({ signal }, 'second signal: forcing exit');
        process.exit(1);
      }
      requested = { signal, at: Date.now() };
      if (daemon) {
        logger.info({ signal }, 'shutting down');
        stop(daemon);
      } else {
        logger.info({ signal }, 'shutting down as soon as the start has finished');
      }
    });
  }
  return {
    started(d) {
      daemon = d;
      if (requested) {
        logger.info({ signal: requested.signal }, 'shutting down');
        stop(d);
      }
    },
  };
}

/**
 * Stop `daemon` on the first shutdown signal and exit 0 (1 when the stop failed); exit 1 at once
 * on a second signal.
 * @example
 * stopOnSignals(await startDaemon(config, logger), logger);
 */
export function stopOnSignals(daemon: Stoppable, logger: Logger): void {
  handleShutdownSignals(logger).started(daemon);
}
