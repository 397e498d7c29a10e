/**
 * Signals and the daemon's shutdown on them (STYLE rule 7): the first signal starts a graceful
 * stop, a second one forces exit.
 */
import { coerceError } from './errors.ts';
import type { Logger } from './logger.ts';

/** Signals that start a graceful shutdown; a second one forces exit. */
export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export async function flushLogger(logger: Logger): Promise<void> {
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
}

/**
 * Stop `daemon` on the first shutdown signal and exit 0 (1 when the stop failed); exit 1 at once
 * on a second signal.
 * @example
 * stopOnSignals(await startDaemon(config, logger), logger);
 */
export function stopOnSignals(daemon: { stop(): Promise<void> }, logger: Logger): void {
  let stopping = false;
  for (const signal of SHUTDOWN_SIGNALS) {
    process.on(signal, () => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: forcing exit');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      daemon.stop().then(
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
    });
  }
}
