/**
 * The sync poller: one sync at start, then every `UYUNI_POLL_INTERVAL_MINUTES` (plus
 * `POST /sync/trigger`). Owns only its lifecycle and an abortable sleep (STYLE rule 3).
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { AbortableLoop } from './loop.ts';
import { SyncAlreadyRunning, type SyncReport, type UyuniSync } from '../services/uyuni/sync.ts';

export class SyncPoller extends AbortableLoop {
  private readonly o: { sync: UyuniSync; logger: Logger; intervalMs: number; afterSync: (r: SyncReport) => Promise<void> };
  constructor(opts: { sync: UyuniSync; logger: Logger; intervalMs: number; afterSync: (r: SyncReport) => Promise<void> }) {
    super();
    this.o = opts;
  }

  protected async run(): Promise<void> {
    let trigger: 'startup' | 'schedule' = 'startup';
    while (this.active) {
      try {
        // afterSync runs inside the sync's UYUNI session (one login per cycle, profiling included).
        const report = await this.o.sync.run(trigger, { after: this.o.afterSync });
        this.o.logger.info({ status: report.status, errata: report.errata, ms: report.durationMs, error: report.error }, 'UYUNI sync finished');
      } catch (raw) {
        if (!(raw instanceof SyncAlreadyRunning)) this.o.logger.error({ err: coerceError(raw).message }, 'UYUNI sync could not run');
      }
      trigger = 'schedule';
      if (this.active) await this.sleep(this.o.intervalMs);
    }
  }
}
