/**
 * The durable timer loop (DESIGN.md §3 rule 3). It owns only its lifecycle and an abortable sleep
 * (STYLE rule 3): claim due timers of owned entries, deliver each as a `TIMER` event, repeat. It
 * sleeps until the next deadline or the poll interval, whichever is sooner; the host nudges it when
 * a write arms an earlier timer. Nothing waits on an in-memory timer across a restart: a restart
 * simply finds the rows and fires them at their original deadline.
 *
 * A database outage does not count against a step: while the database is unreachable nothing a
 * step does can be recorded (its effect waits), so a step timeout or a reboot timeout that came due
 * meanwhile would fail a test over a database blip. When the loop reaches the database again after
 * failing to, it first moves those timers of its entries later by the time since its last good
 * round (`postponeTimers`), then fires what is due.
 */
import { performance } from 'node:perf_hooks';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../persistence/db.ts';
import { claimDueTimers, deleteStaleTimer, msUntilNextTimer, postponeTimers } from '../persistence/sql/timers.ts';
import { isTransient } from '../transient.ts';
import type { Clock } from '../persistence/clock.ts';
import type { ActorHost } from '../machines/host.ts';
import { NotAcceptedError } from '../machines/host.ts';
import type { TimerName } from '../machines/patch.machine.ts';
import { AppError } from '../errors.ts';
import { AbortableLoop } from './loop.ts';

/** The timers that fail a step when they fire: a database outage is not held against them. */
const FAILURE_TIMERS: readonly TimerName[] = ['step_timeout', 'reboot_timeout'];
/** At most this much is given back for one outage. */
const MAX_POSTPONE_MS = 24 * 3_600_000;

export class TimerScheduler extends AbortableLoop {
  fired = 0;
  /** Monotonic time of the last round that reached the database. */
  private lastGoodAt = performance.now();
  /** Since when (monotonic) the database could not be reached, or null. */
  private downSince: number | null = null;

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
        if (isTransient(raw) && this.downSince === null) this.downSince = this.lastGoodAt;
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
    if (this.downSince !== null) {
      const ms = Math.min(MAX_POSTPONE_MS, Math.round(performance.now() - this.downSince));
      const moved = await postponeTimers(this.o.db, this.o.ownerId, FAILURE_TIMERS, ms);
      this.downSince = null;
      if (moved > 0) {
        this.o.logger.info(
          { moved, postponed_s: Math.round(ms / 1000) },
          'the database was unreachable: step and reboot timeouts moved later by the outage',
        );
      }
    }
    const due = await claimDueTimers(this.o.db, this.o.ownerId, 200);
    this.lastGoodAt = performance.now();
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
