/**
 * The actor host's core: the live actors of the entries this replica owns, restored from their
 * snapshots and persisted on every transition — one serialised, fenced write per batch (snapshot,
 * journal, timers, projections, the request's audit row), read back when its answer is lost,
 * evicted and re-hydrated when it cannot be written. `ActorHost` (host.ts) is its API.
 */
import { createActor, type InspectionEvent } from 'xstate';
import { AppError, coerceError } from '../errors.ts';
import { backoffDelay, isTransient } from '../transient.ts';
import {
  claimEntries,
  FencedWriteError,
  loadEntry,
  readWriteState,
  writeTransitions,
  type EntryRow,
  type JournalHead,
  type TransitionWrite,
} from '../persistence/sql/entries.ts';
import { changeAudit, insertAudit, type AuditSlot } from '../persistence/sql/audit.ts';
import { getEntryErrata } from '../persistence/sql/host.ts';
import { applyProjections, needsProjection, testProjectionSignature } from '../persistence/sql/projections.ts';
import { redactPayload } from '../redact.ts';
import { FINAL_STATUSES, stateLabel, statusOf, timersFor, type PatchSnapshot, type Status } from './patch.machine.ts';
import { CommitEvents } from './commitEvents.ts';
import {
  MAX_TRANSIENT_WRITE_FAILURES,
  MAX_WRITE_FAILURES,
  type EventMeta,
  type Hosted,
  type HostOptions,
} from './hostTypes.ts';
import { statusReason, summariseInternal } from './journalRecord.ts';
import { checkRestorable, quarantineSnapshot, writeQuarantine } from './restore.ts';

export class HostCore {
  protected readonly actors = new Map<number, Hosted>();
  protected readonly o: HostOptions;
  protected currentMeta: EventMeta | undefined;
  /** The request's audit record, attached to the first transition its event causes. */
  protected currentAudit: AuditSlot | undefined;
  protected stopped = false;
  protected readonly commits = new CommitEvents((c) => this.o.logger.warn(c, 'a committed-transition listener failed'));
  /** Writes and effects refused by a fence (another replica owns the entry): the fence held. */
  fencedRejections = 0;

  constructor(opts: HostOptions) {
    this.o = opts;
  }

  /** The one clock of the entries (the database's): event times, deadlines, windows. */
  get clock(): HostOptions['clock'] {
    return this.o.clock;
  }

  /** Restore one claimed row; on a bad snapshot, quarantine it to needs_attention. */
  protected async hydrate(row: EntryRow): Promise<boolean> {
    const existing = this.actors.get(row.id);
    if (existing) this.evict(existing, 're-claimed with a new epoch');
    const { parsed, reason } = checkRestorable(this.o.machine, row);
    if (parsed === null) {
      await this.quarantine(row, reason ?? 'unknown');
      return false;
    }
    try {
      this.startActor(row.id, row.owner_epoch, row.revision, parsed, true);
      return true;
    } catch (raw) {
      await this.quarantine(row, `actor failed to start: ${coerceError(raw).message}`);
      return false;
    }
  }

  protected startActor(id: number, epoch: number, revision: number, persisted: unknown, resume = false): void {
    const machine = this.o.machine;
    let hosted: Hosted | undefined;
    const inspect = (ev: InspectionEvent) => {
      this.o.inspect?.(ev);
      if (ev.type === '@xstate.snapshot' && hosted && ev.actorRef === hosted.actor)
        this.onSnapshot(hosted, ev.event, ev.snapshot as PatchSnapshot);
    };
    const actor = createActor(machine, { snapshot: persisted as never, input: undefined as never, inspect });
    const snap = actor.getSnapshot();
    hosted = {
      id,
      actor,
      epoch,
      revision,
      lastValue: snap.value,
      lastJson: '' /* set after start(), below */,
      pending: [],
      draining: false,
      lastWrite: Promise.resolve(),
      evicted: false,
    };
    this.actors.set(id, hosted);
    const h = hosted;
    // xstate#3645: an actor error with no error observer crashes Node. Attach before start().
    actor.subscribe({ error: (err) => void this.onActorError(h, coerceError(err)) });
    actor.start();
    // Compare later snapshots with xstate's own serialisation, not the row's: jsonb reorders keys,
    // and a restored actor must not look changed (that would journal a spurious RESUME per restart).
    h.lastJson = JSON.stringify(actor.getPersistedSnapshot());
    if (resume && actor.getSnapshot().status === 'active') actor.send({ type: 'RESUME', at: this.o.clock.now() });
    if (actor.getSnapshot().status === 'done') this.release(h);
  }

  protected onSnapshot(h: Hosted, event: { type: string }, snapshot: PatchSnapshot): void {
    if (h.evicted || event.type === 'xstate.init') return;
    const persisted = h.actor.logic.getPersistedSnapshot(snapshot);
    const json = JSON.stringify(persisted);
    if (json === h.lastJson) return;
    h.lastJson = json;
    const meta = this.currentMeta ?? { actor: event.type === 'TIMER' ? 'scheduler' : 'system' };
    const { type, at: _at, ...payload } = event as { type: string; at?: number };
    const transition: TransitionWrite = {
      event_type: type,
      payload: redactPayload(type.startsWith('xstate.') ? summariseInternal(payload) : payload),
      from_state: stateLabel(h.lastValue),
      to_state: stateLabel(snapshot.value),
      from_value: h.lastValue,
      to_value: snapshot.value,
      actor: meta.actor,
      ip_address: meta.ip ?? null,
      user_agent: meta.userAgent ?? null,
      request_id: meta.requestId ?? null,
      at:
        typeof (event as { at?: unknown }).at === 'number'
          ? (event as unknown as { at: number }).at
          : this.o.clock.now(),
    };
    h.lastValue = snapshot.value;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => undefined); // observed by whoever awaits lastWrite; never an unhandled rejection
    const audit = this.currentAudit;
    this.currentAudit = undefined;
    h.pending.push({
      transition,
      json,
      value: snapshot.value,
      context: snapshot.context,
      event,
      ...(audit ? { audit } : {}),
      resolve,
      reject,
    });
    h.lastWrite = done;
    if (!h.draining) {
      h.draining = true;
      queueMicrotask(() => void this.drain(h));
    }
  }

  protected async drain(h: Hosted): Promise<void> {
    let failures = 0;
    while (h.pending.length > 0 && !h.evicted) {
      const batch = h.pending.slice();
      const last = batch[batch.length - 1]!;
      const status = statusOf(last.value);
      const timers = timersFor(last.value, last.context).map((t) => ({
        name: t.name,
        fireAt: t.fireAt,
        event: { type: 'TIMER', name: t.name },
      }));
      const timersSig = JSON.stringify(timers);
      const testSig = testProjectionSignature(status, last.context);
      const audited = batch.filter((b) => b.audit !== undefined);
      try {
        const write = {
          entryId: h.id,
          ownerId: this.o.ownerId,
          epoch: h.epoch,
          revision: h.revision,
          head: h.head ?? null,
          snapshotJson: last.json,
          status,
          stateValue: last.value,
          statusReason: statusReason(last.context, status),
          timers: timersSig === h.writtenTimers ? null : timers,
          transitions: batch.map((b) => b.transition),
        };
        const items = batch.map((b) => ({
          event: b.event,
          value: b.value,
          context: b.context,
          transition: b.transition,
        }));
        const writeTest = testSig !== h.writtenTest;
        // The snapshot + journal statement is atomic by itself; a transaction only when more rows go with it.
        const res =
          write.timers === null && !writeTest && !needsProjection(items) && audited.length === 0
            ? await writeTransitions(this.o.db, write)
            : await this.o.db.transaction(async (tx) => {
                const r = await writeTransitions(tx, write);
                await applyProjections(tx, h.id, items, r.lastSeq - batch.length + 1, writeTest);
                // The request's audit row commits with the transition it caused, or neither does.
                for (const b of audited) {
                  await insertAudit(
                    tx,
                    changeAudit(
                      b.audit!,
                      { type: 'queue_entry', id: String(h.id) },
                      {
                        event: b.transition.event_type,
                        from_state: b.transition.from_state,
                        to_state: b.transition.to_state,
                      },
                    ),
                  );
                }
                return r;
              });
        for (const b of audited) b.audit!.written++;
        this.committed(h, batch.length, res, timersSig, testSig, timers, status);
        failures = 0;
      } catch (raw) {
        const err = coerceError(raw);
        // An ambiguous commit: the connection failed after the statement was sent. Read back
        // before retrying or answering: if the revision moved by exactly this batch under our
        // epoch, it committed (only this drain writes this entry), and the truth is "it happened".
        // A fenced retry may be fenced by this very write, committed by the previous attempt.
        let landed: { revision: number; head: JournalHead } | null | 'unknown' = null;
        if (isTransient(raw) || err instanceof FencedWriteError) {
          landed = await this.readBack(h, batch.length);
          if (landed !== null && landed !== 'unknown') {
            this.o.logger.warn(
              { entryId: h.id, err: err.message },
              'a transition write lost its answer but had committed',
            );
            for (const b of audited) b.audit!.written++;
            this.committed(h, batch.length, landed, timersSig, testSig, timers, status);
            failures = 0;
            continue;
          }
        }
        // Fenced for real (another owner, or a newer revision that is not ours): let go. A database
        // that cannot even be read back is a blip: retry, for up to about two minutes.
        const fenced = err instanceof FencedWriteError && landed !== 'unknown';
        if (fenced) this.fencedRejections++;
        const transient = landed === 'unknown' || isTransient(raw);
        if (fenced || failures >= (transient ? MAX_TRANSIENT_WRITE_FAILURES : MAX_WRITE_FAILURES)) {
          this.o.logger.error(
            { entryId: h.id, err: err.message },
            'persisting a transition failed for good; releasing the actor (it will be re-hydrated from the database)',
          );
          for (const b of h.pending.splice(0))
            b.reject(
              new AppError(
                503,
                'not_persisted',
                `the transition of entry ${h.id} could not be persisted; nothing changed`,
                null,
                { cause: err },
              ),
            );
          this.evict(h, err.message);
          break;
        }
        failures++;
        this.o.logger.warn(
          { entryId: h.id, err: err.message, attempt: failures },
          'persisting a transition failed; retrying',
        );
        await new Promise((r) => setTimeout(r, backoffDelay(failures, { baseMs: 200, maxMs: 5000 })));
      }
    }
    h.draining = false;
  }

  /** After a write committed: advance the fence, settle the batch's waiters, arm its timers. */
  protected committed(
    h: Hosted,
    n: number,
    res: { revision: number; head: JournalHead },
    timersSig: string,
    testSig: string,
    timers: { fireAt: number }[],
    status: Status,
  ): void {
    h.head = res.head;
    h.revision = res.revision;
    this.o.metrics?.transitionsCommitted(n);
    h.writtenTimers = timersSig;
    h.writtenTest = testSig;
    const batch = h.pending.splice(0, n);
    for (const b of batch) b.resolve();
    const last = batch[batch.length - 1];
    if (last) this.commits.emit({ id: h.id, status, state: stateLabel(last.value), revision: res.revision });
    for (const t of timers) this.o.onTimerArmed?.(t.fireAt);
    if ((FINAL_STATUSES as readonly string[]).includes(status) && h.pending.length === 0) this.release(h);
  }

  /**
   * Did a write of `n` transitions from `h.revision` commit? Its new revision and head if so; null
   * when it did not; 'unknown' when the database could not be read either.
   */
  protected async readBack(h: Hosted, n: number): Promise<{ revision: number; head: JournalHead } | null | 'unknown'> {
    let row: Awaited<ReturnType<typeof readWriteState>>;
    try {
      row = await readWriteState(this.o.db, h.id);
    } catch {
      return 'unknown';
    }
    if (!row || row.owner_id !== this.o.ownerId || row.owner_epoch !== h.epoch) return null;
    if (row.revision !== h.revision + n || row.seq === null || row.hash === null) return null;
    return { revision: row.revision, head: { seq: row.seq, hash: row.hash } };
  }

  protected release(h: Hosted): void {
    h.evicted = true;
    h.actor.stop();
    if (this.actors.get(h.id) === h) this.actors.delete(h.id);
  }

  protected evict(h: Hosted, why: string): void {
    if (h.evicted) return;
    this.o.logger.warn({ entryId: h.id, why }, 'actor evicted');
    this.release(h);
    this.rehydrateLater(h.id);
  }

  protected readonly rehydrating = new Set<number>();
  /**
   * An evicted entry this replica may still own (a write that gave up in an outage, an effect
   * fenced by this replica's own expired lease) is claimed and hydrated again, with backoff until
   * the database answers. Owned elsewhere, or final, the claim returns nothing and that is that.
   */
  protected rehydrateLater(id: number, attempt = 1): void {
    if (this.stopped || this.rehydrating.has(id)) return;
    this.rehydrating.add(id);
    const timer = setTimeout(
      () => {
        void (async () => {
          try {
            if (this.stopped || this.actors.has(id)) return;
            const claimed = await claimEntries(this.o.db, this.o.ownerId, this.o.leaseTtlMs, 1, {
              onlyIds: [id],
              includeOwn: true,
            });
            this.rehydrating.delete(id);
            if (claimed[0] && !this.actors.has(id)) await this.hydrate(claimed[0]);
          } catch (raw) {
            this.rehydrating.delete(id);
            if (attempt === 1 || attempt % 10 === 0)
              this.o.logger.warn(
                { entryId: id, err: coerceError(raw).message },
                'could not re-hydrate an evicted entry yet; retrying',
              );
            this.rehydrateLater(id, attempt + 1);
          } finally {
            if (this.actors.has(id)) this.rehydrating.delete(id);
          }
        })();
      },
      backoffDelay(attempt, { baseMs: 500, maxMs: 10_000 }),
    );
    timer.unref();
  }

  protected async onActorError(h: Hosted, err: Error): Promise<void> {
    this.o.logger.error({ entryId: h.id, err: err.message }, 'patch actor failed');
    this.evict(h, 'actor error');
    const row = await loadEntry(this.o.db, h.id).catch(() => null);
    if (row && row.owner_id === this.o.ownerId && row.owner_epoch === h.epoch)
      await this.quarantine(row, `actor failed: ${err.message}`).catch(() => undefined);
  }

  /**
   * Move an entry whose snapshot cannot be used to needs_attention, keeping what can be kept of
   * its context, with a journal row saying why. The daemon keeps running.
   */
  protected async quarantine(row: EntryRow, reason: string): Promise<void> {
    this.o.logger.error({ entryId: row.id, reason }, 'entry cannot be restored; moving it to needs_attention');
    const at = this.o.clock.now();
    const fallback = await getEntryErrata(this.o.db, row.id);
    const persisted = quarantineSnapshot(this.o.machine, row, fallback, reason, at);
    try {
      const res = await writeQuarantine(this.o.db, this.o.ownerId, row, persisted, reason, at);
      this.startActor(row.id, row.owner_epoch, res.revision, persisted);
    } catch (raw) {
      this.o.logger.error({ entryId: row.id, err: coerceError(raw).message }, 'could not quarantine entry');
    }
  }
}
