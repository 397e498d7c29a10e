/**
 * The sync poller: one sync at start, then every `UYUNI_POLL_INTERVAL_MINUTES` (plus
 * `POST /sync/trigger`). Owns only its lifecycle and an abortable sleep (STYLE rule 3).
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { AbortableLoop } from './loop.ts';
import { SyncAlreadyRunning, type SyncReport, type UyuniSync } from '../services/uyuni/sync.ts';

export interface SyncPollerOptions {
  sync: UyuniSync;
  logger: Logger;
  intervalMs: number;
  afterSync: (r: SyncReport) => Promise<void>;
  /**
   * With several replicas: whether this one leads the polling (one sync per interval across
   * replicas); asked before each round. Absent: always.
   */
  lead?: () => Promise<boolean>;
  /** Run once when this replica becomes the leader (e.g. fail the previous leader's interrupted runs). */
  onLead?: () => Promise<void>;
  /** How often a replica that does not lead asks again. */
  followerPollMs?: number;
}

export class SyncPoller extends AbortableLoop {
  private readonly o: SyncPollerOptions;
  constructor(opts: SyncPollerOptions) {
    super();
    this.o = opts;
  }

  protected async run(): Promise<void> {
    let trigger: 'startup' | 'schedule' = 'startup';
    let leading = false;
    while (this.active) {
      if (this.o.lead && !(await this.o.lead())) {
        leading = false;
        await this.sleep(this.o.followerPollMs ?? 5000);
        continue;
      }
      if (!leading) {
        leading = true;
        await this.o
          .onLead?.()
          .catch((raw) => this.o.logger.warn({ err: coerceError(raw).message }, 'sync poller: taking the lead failed'));
      }
      try {
        // afterSync runs inside the sync's UYUNI session (one login per cycle, profiling included).
        const report = await this.o.sync.run(trigger, { after: this.o.afterSync });
        this.o.logger.info(
          { status: report.status, errata: report.errata, ms: report.durationMs, error: report.error },
          'UYUNI sync finished',
        );
      } catch (raw) {
        if (!(raw instanceof SyncAlreadyRunning))
          this.o.logger.error({ err: coerceError(raw).message }, 'UYUNI sync could not run');
      }
      trigger = 'schedule';
      if (this.active) await this.sleep(this.o.intervalMs);
    }
  }
}
