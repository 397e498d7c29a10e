/**
 * The actor host: one live XState actor per non-final queue entry owned by this replica.
 *
 * - **Hydrate** (DESIGN.md §3 rule 4): claim entries (lease + epoch), check `machine_version`,
 *   validate the snapshot, attach an error observer *before* `start()`, then send `RESUME`. A
 *   snapshot that cannot be restored moves the entry to `needs_attention` with the reason; the
 *   daemon keeps running.
 * - **Persist every transition** (rule 1): driven by the inspection `@xstate.snapshot` events of the
 *   root actor (they fire for transitions a child actor causes too). Each change becomes a journal
 *   row; an actor's writes are serialised and batched into one fenced transaction
 *   (`revision`, `owner_epoch`) that also replaces the entry's durable timers.
 * - **Operator events** are answered only after the transition they caused is committed; an event
 *   the state does not accept is refused with the current state and the events it accepts.
 * - **Final actors** are stopped and released from memory once their last write is committed.
 */
import { createActor, type Actor, type InspectionEvent, type StateValue } from 'xstate';
import { z } from 'zod';
import { AppError, coerceError } from '../errors.ts';
import { backoffDelay, isTransient } from '../transient.ts';
import type { MetricsSink } from '../services/metrics.ts';
import type { Logger } from '../logger.ts';
import type { Clock } from '../persistence/clock.ts';
import type { Db } from '../persistence/db.ts';
import {
  claimEntries,
  FencedWriteError,
  insertEntry,
  loadEntry,
  readWriteState,
  releaseLeases,
  renewLeases,
  writeTransitions,
  type EntryRow,
  type JournalHead,
  type TransitionWrite,
} from '../persistence/sql/entries.ts';
import { changeAudit, insertAudit, type AuditSlot } from '../persistence/sql/audit.ts';
import { getEntryErrata } from '../persistence/sql/host.ts';
import { applyProjections, needsProjection, testProjectionSignature } from '../persistence/sql/projections.ts';
import { redactPayload } from '../redact.ts';
import { DEFAULT_SETTINGS } from '../services/settings.ts';
import {
  acceptedOperatorEvents,
  FINAL_STATUSES,
  MACHINE_VERSION,
  stateLabel,
  statusOf,
  timersFor,
  type PatchContext,
  type PatchEvent,
  type PatchInput,
  type PatchMachine,
  type PatchSnapshot,
  type Settings,
  type Status,
} from './patch.machine.ts';

export interface EventMeta {
  actor: string;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  /**
   * The API request's audit record: written in the transaction that commits the change it caused
   * (the creation, or the journal write of the transition), never sent to another replica.
   */
  audit?: AuditSlot;
}

type EventWithoutTime = PatchEvent extends infer E ? (E extends { at: number } ? Omit<E, 'at'> : never) : never;

interface PendingWrite {
  transition: TransitionWrite;
  /** The persisted snapshot, serialised once (change detection and the write share it). */
  json: string;
  value: StateValue;
  context: PatchContext;
  event: PatchEvent | { type: string };
  /** The audit record of the request whose event caused this transition (written with it). */
  audit?: AuditSlot;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Hosted {
  id: number;
  actor: Actor<PatchMachine>;
  epoch: number;
  revision: number;
  lastValue: StateValue;
  lastJson: string;
  pending: PendingWrite[];
  draining: boolean;
  lastWrite: Promise<void>;
  evicted: boolean;
  /** What was last written for timers and the test record (undefined: unknown, write). */
  writtenTimers?: string;
  writtenTest?: string;
  /** The journal chain head after our last write (we are the only writer while we own the entry). */
  head?: JournalHead | null;
}

export interface HostOptions {
  db: Db;
  logger: Logger;
  clock: Clock;
  ownerId: string;
  leaseTtlMs: number;
  /** The machine with its effects provided. */
  machine: PatchMachine;
  /** Called after a write that armed a timer, so the scheduler can wake early. */
  onTimerArmed?: (fireAt: number) => void;
  /** Extra inspection observer (e.g. @statelyai/inspect), attached to every actor. */
  inspect?: (ev: InspectionEvent) => void;
  /** Counts committed transitions for /metrics. */
  metrics?: Pick<MetricsSink, 'transitionsCommitted'>;
  /** Forwards an event for an entry another replica owns to that owner (several replicas). */
  forward?: (
    id: number,
    event: Record<string, unknown>,
    meta: EventMeta,
  ) => Promise<{ status: string; state: string; revision: number }>;
}

const snapshotEnvelope = z.object({
  status: z.enum(['active', 'done', 'error', 'stopped']),
  value: z.union([z.string(), z.record(z.string(), z.unknown())]),
  context: z
    .object({ entryId: z.number(), errataId: z.string(), targetOs: z.string(), settings: z.object({}).passthrough() })
    .passthrough(),
  children: z.record(z.string(), z.unknown()).optional(),
});

/** What the host tells `onCommitted` listeners: an entry's state after a committed write. */
export interface CommittedTransition {
  id: number;
  status: string;
  state: string;
  revision: number;
}

/** A write that fails for good is given up after these many attempts (then: evict, re-hydrate). */
const MAX_WRITE_FAILURES = 5;
/** …and a database that is unreachable (transient errors) gets about two minutes. */
const MAX_TRANSIENT_WRITE_FAILURES = 30;

export class NotAcceptedError extends AppError {
  constructor(entryId: number, eventType: string, state: string, accepted: string[]) {
    super(409, 'invalid_transition', `entry ${entryId} is ${state}: ${eventType} is not accepted there`, {
      state,
      event: eventType,
      accepted_events: accepted,
    });
  }
}

export class ActorHost {
  private readonly actors = new Map<number, Hosted>();
  private readonly o: HostOptions;
  private currentMeta: EventMeta | undefined;
  /** The request's audit record, attached to the first transition its event causes. */
  private currentAudit: AuditSlot | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(opts: HostOptions) {
    this.o = opts;
  }

  get size(): number {
    return this.actors.size;
  }

  ids(): number[] {
    return [...this.actors.keys()];
  }

  snapshotOf(id: number): { snapshot: PatchSnapshot; revision: number } | undefined {
    const h = this.actors.get(id);
    return h ? { snapshot: h.actor.getSnapshot(), revision: h.revision } : undefined;
  }

  /**
   * The entry's machine context as committed: the hosted actor's, else the stored snapshot's
   * (an entry another replica owns, or a final one). Null when there is no such entry.
   * @example const ctx = await host.contextOf(12); approvalRefusal(ctx!, 'alice');
   */
  async contextOf(id: number): Promise<{ context: PatchContext; status: string } | null> {
    const h = this.actors.get(id);
    if (h && !h.evicted && h.pending.length === 0) {
      const snap = h.actor.getSnapshot();
      return { context: snap.context, status: statusOf(snap.value) };
    }
    const row = await loadEntry(this.o.db, id);
    if (row === null) return null;
    const ctx = (row.snapshot as { context?: PatchContext } | null)?.context;
    return ctx ? { context: ctx, status: row.status } : null;
  }

  /**
   * Claim and hydrate entries. At boot (`includeOwn`) this includes the entries this replica
   * owned before a restart; the periodic call only picks up unowned or expired ones.
   */
  async hydrateAll(
    opts: { includeOwn?: boolean; batch?: number } = {},
  ): Promise<{ hydrated: number; quarantined: number }> {
    const batch = opts.batch ?? 2000;
    let hydrated = 0;
    let quarantined = 0;
    let afterId = 0;
    for (;;) {
      const rows = await claimEntries(this.o.db, this.o.ownerId, this.o.leaseTtlMs, batch, {
        afterId,
        includeOwn: opts.includeOwn ?? false,
      });
      for (const row of rows) {
        const ok = await this.hydrate(row);
        if (ok) hydrated++;
        else quarantined++;
      }
      if (rows.length < batch) break;
      afterId = rows.reduce((m, r) => Math.max(m, r.id), afterId); // RETURNING has no order
    }
    return { hydrated, quarantined };
  }

  /** Start lease renewal and periodic claiming of orphaned entries. */
  startLeaseLoop(): void {
    const every = Math.max(500, Math.floor(this.o.leaseTtlMs / 3));
    const tick = async () => {
      if (this.stopped) return;
      try {
        // Only the actors hosted before the renewal was asked: an entry created (or claimed) while
        // it ran is not in its answer, and has not lost anything.
        const before = [...this.actors.values()];
        const held = await renewLeases(this.o.db, this.o.ownerId, this.o.leaseTtlMs);
        const heldEpoch = new Map(held.map((r) => [r.id, r.owner_epoch]));
        for (const h of before) {
          if (this.actors.get(h.id) === h && h.pending.length === 0 && heldEpoch.get(h.id) !== h.epoch)
            this.evict(h, 'lease lost to another replica');
        }
        await this.hydrateAll();
      } catch (raw) {
        this.o.logger.warn({ err: coerceError(raw).message }, 'lease renewal failed');
      } finally {
        if (!this.stopped) this.leaseTimer = setTimeout(() => void tick(), every);
      }
    };
    this.leaseTimer = setTimeout(() => void tick(), every);
  }

  /**
   * Create a new entry with a fresh actor, its first journal row and snapshot in one transaction.
   * @returns the entry id.
   */
  async create(
    e: {
      errataId: string;
      errataVersion: string | null;
      targetOs: PatchInput['targetOs'];
      priority: number;
      successScore: number;
      notes: string | null;
      settings: Settings;
      /** The approval policy for this entry (issue 12): distinct approvers needed, separation of duties. */
      approvals?: { required: number; separationOfDuties: boolean };
    },
    meta: EventMeta,
  ): Promise<number> {
    const at = this.o.clock.now();
    const created = await this.o.db.transaction(async (tx) => {
      const row = await insertEntry(tx, {
        errataId: e.errataId,
        errataVersion: e.errataVersion,
        targetOs: e.targetOs,
        priority: e.priority,
        successScore: e.successScore,
        machineVersion: MACHINE_VERSION,
        createdBy: meta.actor,
        notes: e.notes,
        ownerId: this.o.ownerId,
        leaseMs: this.o.leaseTtlMs,
      });
      const input: PatchInput = {
        entryId: row.id,
        errataId: e.errataId,
        targetOs: e.targetOs,
        settings: e.settings,
        queuedBy: meta.actor,
        ...(e.approvals
          ? { requiredApprovals: e.approvals.required, separationOfDuties: e.approvals.separationOfDuties }
          : {}),
      };
      const actor = createActor(this.o.machine, { input });
      const snap = actor.getSnapshot();
      const persisted = actor.getPersistedSnapshot();
      await writeTransitions(tx, {
        entryId: row.id,
        ownerId: this.o.ownerId,
        epoch: row.owner_epoch,
        revision: 0,
        snapshotJson: JSON.stringify(persisted),
        status: statusOf(snap.value),
        stateValue: snap.value,
        statusReason: null,
        timers: [],
        transitions: [
          {
            event_type: 'CREATE',
            payload: redactPayload({ errata_id: e.errataId, target_os: e.targetOs, priority: e.priority }),
            from_state: null,
            to_state: stateLabel(snap.value),
            from_value: null,
            to_value: snap.value,
            actor: meta.actor,
            ip_address: meta.ip ?? null,
            user_agent: meta.userAgent ?? null,
            request_id: meta.requestId ?? null,
            at,
          },
        ],
      });
      if (meta.audit) {
        await insertAudit(
          tx,
          changeAudit(
            meta.audit,
            { type: 'queue_entry', id: String(row.id) },
            {
              event: 'CREATE',
              errata_id: e.errataId,
              target_os: e.targetOs,
              required_approvals: input.requiredApprovals ?? 1,
              separation_of_duties: input.separationOfDuties ?? false,
            },
          ),
        );
      }
      return { id: row.id, epoch: row.owner_epoch, persisted };
    });
    if (meta.audit) meta.audit.written++;
    this.startActor(created.id, created.epoch, 1, created.persisted);
    return created.id;
  }

  /**
   * Deliver an operator (or scheduler) event and wait until the transition it caused is committed.
   * @throws NotAcceptedError (409) when the current state does not accept it.
   */
  async send(
    id: number,
    event: EventWithoutTime,
    meta: EventMeta,
    opts: { forward?: boolean } = {},
  ): Promise<{ status: Status; state: string; revision: number }> {
    let h: Hosted;
    try {
      h = await this.ensureLoaded(id, event.type);
    } catch (raw) {
      // Another replica owns the entry: hand the event to it and answer with its committed outcome.
      if (raw instanceof AppError && raw.code === 'owned_elsewhere' && this.o.forward && opts.forward !== false) {
        // The owner writes the journal; the audit record stays here (authenticate writes it after the answer).
        const { audit: _local, ...sent } = meta;
        const r = await this.o.forward(id, event as Record<string, unknown>, sent);
        return r as { status: Status; state: string; revision: number };
      }
      throw raw;
    }
    const at = this.o.clock.now();
    const ev = { ...event, at } as PatchEvent;
    const snap = h.actor.getSnapshot();
    if (snap.status !== 'active' || !snap.can(ev)) {
      throw new NotAcceptedError(
        id,
        ev.type,
        stateLabel(snap.value),
        snap.status === 'active' ? acceptedOperatorEvents(snap, at) : [],
      );
    }
    const before = h.lastWrite;
    this.currentMeta = meta;
    this.currentAudit = meta.audit;
    try {
      h.actor.send(ev);
    } finally {
      this.currentMeta = undefined;
      this.currentAudit = undefined;
    }
    // `lastWrite` now points at the write of the transition this event caused (if any).
    if (h.lastWrite !== before) await h.lastWrite;
    const after = h.actor.getSnapshot();
    return { status: statusOf(after.value), state: stateLabel(after.value), revision: h.revision };
  }

  /**
   * Resolves once every transition of the entry queued so far is committed; rejects when they
   * could not be (the actor is then evicted, and nothing its last transition invoked may run).
   * The effect runner's gate: an effect starts only after the transition that invoked it is durable.
   */
  async whenCommitted(id: number): Promise<{ ownerId: string; epoch: number }> {
    const h = this.actors.get(id);
    if (!h || h.evicted) throw new AppError(503, 'not_hosted', `queue entry ${id} is not hosted here`);
    await h.lastWrite;
    if (h.evicted)
      throw new AppError(503, 'not_hosted', `queue entry ${id} was evicted before its transition was committed`);
    return { ownerId: this.o.ownerId, epoch: h.epoch };
  }

  /** Writes and effects refused by a fence (another replica owns the entry): the fence held. */
  fencedRejections = 0;

  /** An effect of the entry was refused by its fence: let the actor go (the new owner runs it). */
  fenced(id: number, why: string): void {
    this.fencedRejections++;
    const h = this.actors.get(id);
    if (h) this.evict(h, why);
  }

  private readonly committedListeners = new Set<(c: CommittedTransition) => void>();
  private emitCommitted(c: CommittedTransition): void {
    for (const l of this.committedListeners) {
      try {
        l(c);
      } catch (raw) {
        this.o.logger.warn({ err: coerceError(raw).message }, 'a committed-transition listener failed'); // never the host's problem
      }
    }
  }

  /** Be told of every committed transition batch (its last state); returns the unsubscribe. */
  onCommitted(listener: (c: CommittedTransition) => void): () => void {
    this.committedListeners.add(listener);
    return () => this.committedListeners.delete(listener);
  }

  /**
   * Resolve once the entry's committed state satisfies `pred` — now, or at a later commit of this
   * host. Waits on commits, not on polling.
   * @example await host.committedState(id, (c) => c.status === 'pending_approval');
   */
  async committedState(
    id: number,
    pred: (c: { status: string; state: string }) => boolean,
    timeoutMs = 15_000,
  ): Promise<CommittedTransition> {
    return new Promise<CommittedTransition>((resolve, reject) => {
      let done = false;
      const finish = (c: CommittedTransition | Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        off();
        if (c instanceof Error) reject(c);
        else resolve(c);
      };
      const off = this.onCommitted((c) => {
        if (c.id === id && pred(c)) finish(c);
      });
      const timer = setTimeout(
        () => finish(new Error(`entry ${id}: no committed state matched within ${timeoutMs} ms`)),
        timeoutMs,
      );
      // The state already committed (the entry may have moved before we subscribed).
      void loadEntry(this.o.db, id).then(
        (row) => {
          if (row === null) return finish(new Error(`entry ${id} does not exist`));
          const c = {
            id,
            status: row.status,
            state: stateLabel((row.snapshot as { value: StateValue }).value),
            revision: row.revision,
          };
          if (pred(c)) finish(c);
        },
        (err: unknown) => finish(coerceError(err)),
      );
    });
  }

  /** Wait until every queued write of every actor is committed (shutdown, tests). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.actors.values()].map((h) => h.lastWrite));
  }

  /** Stop every actor after flushing its writes, and hand the leases back. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.leaseTimer);
    await this.flush();
    for (const h of this.actors.values()) {
      h.evicted = true;
      h.actor.stop();
    }
    this.actors.clear();
    await releaseLeases(this.o.db, this.o.ownerId).catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------------

  private async ensureLoaded(id: number, eventType: string): Promise<Hosted> {
    const local = this.actors.get(id);
    if (local && !local.evicted) return local;
    const row = await loadEntry(this.o.db, id);
    if (row === null) throw new AppError(404, 'not_found', `queue entry ${id} does not exist`);
    if ((FINAL_STATUSES as readonly string[]).includes(row.status)) {
      throw new NotAcceptedError(id, eventType, row.status, []);
    }
    const claimed = await claimEntries(this.o.db, this.o.ownerId, this.o.leaseTtlMs, 1, {
      onlyIds: [id],
      includeOwn: true,
    });
    if (claimed.length === 0) {
      throw new AppError(
        503,
        'owned_elsewhere',
        `queue entry ${id} is owned by replica ${row.owner_id ?? '?'}; retry there or after its lease expires`,
        { owner: row.owner_id },
      );
    }
    const ok = await this.hydrate(claimed[0]!);
    const h = this.actors.get(id);
    if (!ok || !h)
      throw new AppError(
        409,
        'needs_attention',
        `queue entry ${id} could not be restored and was moved to needs_attention`,
      );
    return h;
  }

  /** Restore one claimed row; on a bad snapshot, quarantine it to needs_attention. */
  private async hydrate(row: EntryRow): Promise<boolean> {
    const existing = this.actors.get(row.id);
    if (existing) this.evict(existing, 're-claimed with a new epoch');
    let reason: string | null = null;
    let parsed: z.infer<typeof snapshotEnvelope> | null = null;
    if (row.machine_version !== MACHINE_VERSION) {
      reason = `machine version ${row.machine_version} is not known to this build (${MACHINE_VERSION})`;
    } else {
      const env = snapshotEnvelope.safeParse(row.snapshot);
      if (!env.success)
        reason = `snapshot is malformed: ${env.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`;
      else if (env.data.status === 'error' || env.data.status === 'stopped')
        reason = `snapshot has status ${env.data.status}`;
      else if (env.data.context.entryId !== row.id)
        reason = `snapshot belongs to entry ${env.data.context.entryId}, not ${row.id}`;
      else {
        try {
          this.o.machine.resolveState({
            value: env.data.value as StateValue,
            context: env.data.context as unknown as PatchContext,
          });
          statusOf(env.data.value as StateValue);
          parsed = env.data;
        } catch (raw) {
          reason = `snapshot state cannot be restored: ${coerceError(raw).message}`;
        }
      }
    }
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

  private startActor(id: number, epoch: number, revision: number, persisted: unknown, resume = false): void {
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

  private onSnapshot(h: Hosted, event: { type: string }, snapshot: PatchSnapshot): void {
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

  private async drain(h: Hosted): Promise<void> {
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
  private committed(
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
    if (last) this.emitCommitted({ id: h.id, status, state: stateLabel(last.value), revision: res.revision });
    for (const t of timers) this.o.onTimerArmed?.(t.fireAt);
    if ((FINAL_STATUSES as readonly string[]).includes(status) && h.pending.length === 0) this.release(h);
  }

  /**
   * Did a write of `n` transitions from `h.revision` commit? Its new revision and head if so; null
   * when it did not; 'unknown' when the database could not be read either.
   */
  private async readBack(h: Hosted, n: number): Promise<{ revision: number; head: JournalHead } | null | 'unknown'> {
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

  private release(h: Hosted): void {
    h.evicted = true;
    h.actor.stop();
    if (this.actors.get(h.id) === h) this.actors.delete(h.id);
  }

  private evict(h: Hosted, why: string): void {
    if (h.evicted) return;
    this.o.logger.warn({ entryId: h.id, why }, 'actor evicted');
    this.release(h);
    this.rehydrateLater(h.id);
  }

  private readonly rehydrating = new Set<number>();
  /**
   * An evicted entry this replica may still own (a write that gave up in an outage, an effect
   * fenced by this replica's own expired lease) is claimed and hydrated again, with backoff until
   * the database answers. Owned elsewhere, or final, the claim returns nothing and that is that.
   */
  private rehydrateLater(id: number, attempt = 1): void {
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

  private async onActorError(h: Hosted, err: Error): Promise<void> {
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
  private async quarantine(row: EntryRow, reason: string): Promise<void> {
    this.o.logger.error({ entryId: row.id, reason }, 'entry cannot be restored; moving it to needs_attention');
    const at = this.o.clock.now();
    const old = (row.snapshot ?? {}) as { context?: Partial<PatchContext> };
    const fallback = await getEntryErrata(this.o.db, row.id);
    const seed = createActor(this.o.machine, {
      input: {
        entryId: row.id,
        errataId: fallback?.errata_id ?? row.errata_id,
        targetOs: (fallback?.target_os ?? row.target_os) as PatchInput['targetOs'],
        settings: DEFAULT_SETTINGS,
      },
    }).getSnapshot().context;
    const context: PatchContext = {
      ...seed,
      ...(isPlainContext(old.context, row.id) ? old.context : {}),
      entryId: row.id,
      attention: { reason, phase: 'test', at },
      retry: null,
      deadlines: {},
    } as PatchContext;
    const resolved = this.o.machine.resolveState({ value: 'needs_attention', context });
    const persisted = this.o.machine.getPersistedSnapshot(resolved);
    try {
      const res = await this.o.db.transaction((tx) =>
        writeTransitions(tx, {
          entryId: row.id,
          ownerId: this.o.ownerId,
          epoch: row.owner_epoch,
          revision: row.revision,
          snapshotJson: JSON.stringify(persisted),
          status: 'needs_attention',
          stateValue: 'needs_attention',
          statusReason: reason,
          timers: [],
          transitions: [
            {
              event_type: 'HYDRATE_FAILED',
              payload: { reason, machine_version: row.machine_version },
              from_state: row.status,
              to_state: 'needs_attention',
              from_value: null,
              to_value: 'needs_attention',
              actor: 'system',
              ip_address: null,
              user_agent: null,
              request_id: null,
              at,
            },
          ],
        }),
      );
      this.startActor(row.id, row.owner_epoch, res.revision, persisted);
    } catch (raw) {
      this.o.logger.error({ entryId: row.id, err: coerceError(raw).message }, 'could not quarantine entry');
    }
  }
}

function isPlainContext(ctx: unknown, id: number): ctx is Partial<PatchContext> {
  return (
    typeof ctx === 'object' &&
    ctx !== null &&
    (ctx as { entryId?: unknown }).entryId === id &&
    typeof (ctx as { settings?: unknown }).settings === 'object'
  );
}

/** Internal xstate events carry effect outputs; keep the journal readable and small. */
function summariseInternal(payload: Record<string, unknown>): unknown {
  const out = payload.output as Record<string, unknown> | undefined;
  const error = payload.error as Record<string, unknown> | undefined;
  if (out && typeof out === 'object') {
    const { evidence: _e, ...rest } = out;
    return { output: rest };
  }
  if (error && typeof error === 'object') return { error: { message: error.message, transient: error.transient } };
  return payload;
}

function statusReason(ctx: PatchContext, status: Status): string | null {
  if (status === 'needs_attention') return ctx.attention?.reason ?? null;
  if (status === 'failed' || status === 'rolled_back') return ctx.resolution ?? ctx.failure?.reason ?? null;
  if (status === 'pending_retry') return ctx.lastError ? `${ctx.lastError.step}: ${ctx.lastError.message}` : null;
  if (status === 'removed') return ctx.resolution;
  if (status === 'rejected' || status === 'snoozed') return ctx.approval?.reason ?? null;
  return null;
}
