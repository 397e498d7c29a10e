/**
 * The durable timer loop (DESIGN.md §3 rule 3). It owns only its lifecycle and an abortable sleep
 * (STYLE rule 3): claim due timers of owned entries, deliver each as a `TIMER` event, repeat. It
 * sleeps until the next deadline or the poll interval, whichever is sooner; the host nudges it when
 * a write arms an earlier timer. Nothing waits on an in-memory timer across a restart: a restart
 * simply finds the rows and fires them at their original deadline.
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../persistence/db.ts';
import { claimDueTimers, deleteStaleTimer, msUntilNextTimer } from '../persistence/sql/timers.ts';
import type { Clock } from '../persistence/clock.ts';
import type { ActorHost } from '../machines/host.ts';
import { NotAcceptedError } from '../machines/host.ts';
import type { TimerName } from '../machines/patch.machine.ts';
import { AppError } from '../errors.ts';
import { AbortableLoop } from './loop.ts';

export class TimerScheduler extends AbortableLoop {
  fired = 0;

  private readonly o: { db: Db; logger: Logger; clock: Clock; ownerId: string; pollMs: number; host: ActorHost };
  constructor(opts: { db: Db; logger: Logger; clock: Clock; ownerId: string; pollMs: number; host: ActorHost }) {
    super(() => opts.clock.now());
    this.o = opts;
  }

  /** A timer due at `fireAt` (database clock) was armed: wake earlier if needed. */
  nudge(fireAt: number): void {
    if (fireAt < this.nextWakeAt) {
      const ms = Math.max(0, fireAt - this.o.clock.now());
      if (ms < 5) this.interrupt();
      else this.reschedule(ms);
    }
  }

  protected async run(): Promise<void> {
    while (this.active) {
      let fired = 0;
      try {
        fired = await this.tick();
      } catch (raw) {
        this.o.logger.warn({ err: coerceError(raw).message }, 'timer tick failed');
      }
      if (!this.active) break;
      if (fired > 0) continue; // there may be more due
      let ms = this.o.pollMs;
      try {
        const next = await msUntilNextTimer(this.o.db, this.o.ownerId);
        if (next !== null) ms = Math.max(0, Math.min(ms, next + 2));
      } catch {
        // keep the poll interval
      }
      await this.sleep(ms);
    }
  }

  /** Claim and deliver due timers; returns how many were delivered. */
  async tick(): Promise<number> {
    const due = await claimDueTimers(this.o.db, this.o.ownerId, 200);
    await Promise.all(
      due.map(async (t) => {
        try {
          await this.o.host.send(t.queue_id, { type: 'TIMER', name: t.name as TimerName }, { actor: 'scheduler' });
          this.fired++;
        } catch (raw) {
          if (raw instanceof NotAcceptedError || (raw instanceof AppError && raw.status === 404)) {
            await deleteStaleTimer(this.o.db, t.queue_id, t.name, t.armed_revision);
          } else {
            this.o.logger.warn(
              { entryId: t.queue_id, timer: t.name, err: coerceError(raw).message },
              'timer delivery failed; it will be retried',
            );
          }
        }
      }),
    );
    return due.length;
  }
}
