/**
 * The daemon's audit anchors (docs/audit.md): `recordAuditAnchor` every 5 minutes and once more at
 * shutdown, after the HTTP server and the actors have stopped (register its releaser before them),
 * so the newest rows of a clean stop are covered and deleting them is detectable.
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { recordAuditAnchor } from './auditChain.ts';
import type { Db } from './db.ts';

export const AUDIT_ANCHOR_INTERVAL_MS = 5 * 60_000;

/**
 * Start anchoring; `stop()` ends the timer and records the shutdown anchor.
 * @example
 * const anchors = startAuditAnchors(db, logger, 'replica-a');
 * releasers.add('audit-anchor', () => anchors.stop());
 */
export function startAuditAnchors(
  db: Db,
  logger: Logger,
  recordedBy: string,
  intervalMs = AUDIT_ANCHOR_INTERVAL_MS,
): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const anchor = (why: string) => {
    running = running.then(() =>
      recordAuditAnchor(db, { recordedBy, logger }).then(
        () => undefined,
        (raw) => logger.error({ err: coerceError(raw).message, why }, 'audit anchor failed'),
      ),
    );
    return running;
  };
  const timer = setInterval(() => void anchor('interval'), intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await anchor('shutdown');
    },
  };
}
