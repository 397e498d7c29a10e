/**
 * The sync poller: one sync at start, then every `UYUNI_POLL_INTERVAL_MINUTES` (plus
 * `POST /sync/trigger`). Owns only its lifecycle and an abortable sleep (STYLE rule 3).
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { SyncAlreadyRunning, type SyncReport, type UyuniSync } from './sync.ts';

export class SyncPoller {
  private state: 'created' | 'active' | 'stopping' | 'stopped' = 'created';
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private readonly o: { sync: UyuniSync; logger: Logger; intervalMs: number; afterSync: (r: SyncReport) => Promise<void> };
  constructor(opts: { sync: UyuniSync; logger: Logger; intervalMs: number; afterSync: (r: SyncReport) => Promise<void> }) {
    this.o = opts;
  }

  start(): void {
    if (this.state !== 'created') return;
    this.state = 'active';
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (this.state !== 'active') return;
    this.state = 'stopping';
    clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    this.state = 'stopped';
  }

  private async run(): Promise<void> {
    let trigger: 'startup' | 'schedule' = 'startup';
    while (this.state === 'active') {
      try {
        const report = await this.o.sync.run(trigger);
        this.o.logger.info({ status: report.status, errata: report.errata, ms: report.durationMs, error: report.error }, 'UYUNI sync finished');
        if (report.status === 'completed') await this.o.afterSync(report);
      } catch (raw) {
        if (!(raw instanceof SyncAlreadyRunning)) this.o.logger.error({ err: coerceError(raw).message }, 'UYUNI sync could not run');
      }
      trigger = 'schedule';
      if (this.state !== 'active') break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, this.o.intervalMs);
      });
    }
  }
}
