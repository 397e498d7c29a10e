/**
 * Operator events work at any replica (issue 11). An event for an entry that another replica owns
 * is not refused: the receiving replica posts it to the `operator_inbox` table and waits; the owner
 * takes it, delivers it to its actor like any local event, and answers after the transition
 * committed. So behind a round-robin load balancer every approval lands, exactly once, and is
 * answered with what really happened.
 *
 * Wake-ups are LISTEN/NOTIFY on a connection of its own (`spm_inbox` for owners, `spm_inbox_answer`
 * for senders); polling stays the guarantee when a notification is lost or the connection is down.
 * An event nobody takes within `takeTimeoutMs` (the owner died and its lease has not expired yet)
 * is withdrawn — it can never be delivered later — and answered 503 "nothing changed".
 */
import pg from 'pg';
import { AppError, coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../persistence/db.ts';
import {
  answerInboxEvent,
  postInboxEvent,
  readInboxAnswer,
  takeInboxEvents,
  withdrawInboxEvent,
} from '../persistence/sql/inbox.ts';
import { AbortableLoop } from '../scheduler/loop.ts';
import { backoffDelay } from '../transient.ts';
import type { EventMeta } from './host.ts';

/** What the owner answers: the committed outcome, or the error the sender re-raises. */
type Answer =
  | { ok: true; result: { status: string; state: string; revision: number } }
  | { ok: false; error: { status: number; code: string; message: string; details: unknown } };

export interface InboxOptions {
  db: Db;
  logger: Logger;
  ownerId: string;
  /** A database URL for LISTEN (a connection of its own); without it, polling only. */
  listenUrl?: string;
  /** How often the owner looks for events without a wake-up, and a sender for its answer. */
  pollMs?: number;
  /** An event not taken by then is withdrawn (503). */
  takeTimeoutMs?: number;
  /** A taken event not answered by then is answered 503 `answer_pending` (it may still happen). */
  answerTimeoutMs?: number;
}

export type LocalSend = (
  id: number,
  event: Record<string, unknown>,
  meta: EventMeta,
) => Promise<{ status: string; state: string; revision: number }>;

export class OperatorInbox extends AbortableLoop {
  private readonly o: Required<Omit<InboxOptions, 'listenUrl'>> & { listenUrl?: string };
  private deliver: LocalSend | undefined;
  private listener: pg.Client | undefined;
  private readonly waiters = new Map<number, () => void>();
  /** Events delivered for other replicas, and forwarded by this one (for metrics and tests). */
  delivered = 0;
  forwarded = 0;

  constructor(opts: InboxOptions) {
    super();
    this.o = { pollMs: 250, takeTimeoutMs: 10_000, answerTimeoutMs: 30_000, ...opts };
  }

  /** Start taking events for this replica's entries, delivering them with `deliver`. */
  startDelivering(deliver: LocalSend): void {
    this.deliver = deliver;
    if (this.o.listenUrl) void this.listen(this.o.listenUrl, 1);
    this.start();
  }

  override async stop(): Promise<void> {
    await super.stop();
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
  }

  /**
   * Hand an event to the entry's owner and wait for its committed answer.
   * @throws AppError the owner's refusal (e.g. 409 invalid_transition), or 503 when nobody took it.
   */
  async forward(
    id: number,
    event: Record<string, unknown>,
    meta: EventMeta,
  ): Promise<{ status: string; state: string; revision: number }> {
    this.forwarded++;
    const inboxId = await postInboxEvent(this.o.db, { queueId: id, event, meta, sentBy: this.o.ownerId });
    const t0 = Date.now();
    let taken = false;
    for (;;) {
      const row = await readInboxAnswer(this.o.db, inboxId);
      if (row.status === 'done' || row.status === 'failed') return this.unwrap(row.answer as Answer);
      if (row.status === 'taken') taken = true;
      const waited = Date.now() - t0;
      if (!taken && waited > this.o.takeTimeoutMs) {
        if (await withdrawInboxEvent(this.o.db, inboxId)) {
          throw new AppError(
            503,
            'owner_unavailable',
            `queue entry ${id} is owned by another replica that did not take the event within ${Math.round(this.o.takeTimeoutMs / 1000)} s; nothing changed, retry`,
            { inbox_id: inboxId },
          );
        }
        taken = true; // the owner took it just now: its answer will come
      }
      if (taken && waited > this.o.takeTimeoutMs + this.o.answerTimeoutMs) {
        throw new AppError(
          503,
          'answer_pending',
          `the owner of queue entry ${id} took the event but has not answered yet; GET /api/v1/queue/${id} shows whether it happened`,
          { inbox_id: inboxId },
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(this.o.pollMs, 100));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.set(inboxId, done);
      });
      this.waiters.delete(inboxId);
    }
  }

  private unwrap(a: Answer): { status: string; state: string; revision: number } {
    if (a.ok) return a.result;
    throw new AppError(a.error.status, a.error.code, a.error.message, a.error.details);
  }

  protected async run(): Promise<void> {
    while (this.active) {
      let n = 0;
      try {
        n = await this.tick();
      } catch (raw) {
        this.o.logger.warn({ err: coerceError(raw).message }, 'operator inbox: taking events failed; retrying');
      }
      if (!this.active) break;
      if (n === 0) await this.sleep(this.o.pollMs);
    }
  }

  /** Take and deliver the pending events of owned entries; returns how many. */
  async tick(): Promise<number> {
    const deliver = this.deliver;
    if (!deliver) return 0;
    const rows = await takeInboxEvents(this.o.db, this.o.ownerId, 50);
    // One entry's events in order; different entries in parallel.
    const byEntry = new Map<number, typeof rows>();
    for (const r of rows) byEntry.set(r.queue_id, [...(byEntry.get(r.queue_id) ?? []), r]);
    await Promise.all(
      [...byEntry.values()].map(async (events) => {
        for (const r of events) {
          let answer: Answer;
          try {
            answer = { ok: true, result: await deliver(r.queue_id, r.event, r.meta as unknown as EventMeta) };
          } catch (raw) {
            const err = coerceError(raw);
            answer =
              err instanceof AppError
                ? {
                    ok: false,
                    error: { status: err.status, code: err.code, message: err.message, details: err.details },
                  }
                : {
                    ok: false,
                    error: {
                      status: 503,
                      code: 'owner_error',
                      message: `the owner could not deliver the event: ${err.message}`,
                      details: null,
                    },
                  };
          }
          await answerInboxEvent(this.o.db, r.id, answer.ok, answer);
          this.delivered++;
        }
      }),
    );
    return rows.length;
  }

  private async listen(url: string, attempt: number): Promise<void> {
    if (!this.active && this.state !== 'created') return;
    const c = new pg.Client({ connectionString: url, application_name: 'spm-orchestrator inbox', keepAlive: true });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('LISTEN spm_inbox');
      await c.query('LISTEN spm_inbox_answer');
    } catch (raw) {
      await c.end().catch(() => undefined);
      if (attempt === 1)
        this.o.logger.warn({ err: coerceError(raw).message }, 'operator inbox: LISTEN failed; polling until it works');
      setTimeout(
        () => void this.listen(url, attempt + 1),
        backoffDelay(attempt, { baseMs: 500, maxMs: 10_000 }),
      ).unref();
      return;
    }
    this.listener = c;
    c.on('notification', (n) => {
      if (n.channel === 'spm_inbox') this.interrupt();
      else if (n.channel === 'spm_inbox_answer') this.waiters.get(Number(n.payload))?.();
    });
    c.once('end', () => {
      if (this.listener === c) {
        this.listener = undefined;
        setTimeout(() => void this.listen(url, 1), 500).unref();
      }
    });
  }
}
