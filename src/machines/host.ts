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
import { createActor } from 'xstate';
import { AppError, coerceError } from '../errors.ts';
import {
  claimEntries,
  insertEntry,
  loadEntry,
  releaseLeases,
  renewLeases,
  writeTransitions,
} from '../persistence/sql/entries.ts';
import { changeAudit, insertAudit } from '../persistence/sql/audit.ts';
import { redactPayload } from '../redact.ts';
import {
  acceptedOperatorEvents,
  FINAL_STATUSES,
  MACHINE_VERSION,
  stateLabel,
  statusOf,
  type PatchContext,
  type PatchEvent,
  type PatchInput,
  type PatchSnapshot,
  type Settings,
  type Status,
} from './patch.machine.ts';
import {
  NotAcceptedError,
  type CommittedTransition,
  type EventMeta,
  type EventWithoutTime,
  type Hosted,
} from './hostTypes.ts';

export type { CommittedTransition, EventMeta, HostOptions } from './hostTypes.ts';
export { NotAcceptedError } from './hostTypes.ts';

import { HostCore } from './hostCore.ts';
export class ActorHost extends HostCore {
  private leaseTimer: NodeJS.Timeout | undefined;

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

  /** An effect of the entry was refused by its fence: let the actor go (the new owner runs it). */
  fenced(id: number, why: string): void {
    this.fencedRejections++;
    const h = this.actors.get(id);
    if (h) this.evict(h, why);
  }

  /** Be told of every committed transition batch (its last state); returns the unsubscribe. */
  onCommitted(listener: (c: CommittedTransition) => void): () => void {
    return this.commits.on(listener);
  }

  /**
   * Resolve once the entry's committed state satisfies `pred` — now, or at a later commit of this
   * host. Waits on commits, not on polling.
   * @example await host.committedState(id, (c) => c.status === 'pending_approval');
   */
  committedState(
    id: number,
    pred: (c: { status: string; state: string }) => boolean,
    timeoutMs = 15_000,
  ): Promise<CommittedTransition> {
    return this.commits.waitFor(id, pred, timeoutMs, () => loadEntry(this.o.db, id));
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
}
