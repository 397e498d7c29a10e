/**
 * The answers about one queue entry: its detail (`GET /queue/{id}`), its journal
 * (`GET /queue/{id}/history`) and the inspector's view of its actor (`GET /queue/{id}/inspect`).
 * The live actor, when this replica hosts it, is preferred to the persisted snapshot.
 */
import { machineGraph } from '../../machines/graph.ts';
import type { ActorHost } from '../../machines/host.ts';
import {
  acceptedOperatorEvents,
  approvalsMissing,
  approvedGroups,
  patchMachine,
  stateLabel,
  type PatchContext,
} from '../../machines/patch.machine.ts';
import type { Clock } from '../../persistence/clock.ts';
import type { Db } from '../../persistence/db.ts';
import { loadEntry, loadJournal } from '../../persistence/sql/entries.ts';
import { getErrata, getQueueItem, getRiskProfile, testsOfEntry } from '../../persistence/sql/queue.ts';
import { redactPayload } from '../../redact.ts';
import { latestJudgement } from './judgementView.ts';

/** What the entry views read: the database, the live actors and the clock. */
export interface QueueViewDeps {
  db: Db;
  actors: ActorHost;
  clock: Clock;
}

/** The operator events the live actor accepts now (none when it is not live here or has stopped). */
function allowedEvents(deps: QueueViewDeps, live: ReturnType<ActorHost['snapshotOf']>) {
  return live && live.snapshot.status === 'active' ? acceptedOperatorEvents(live.snapshot, deps.clock.now()) : [];
}

/**
 * This round's approval gate: who approved (and for which production groups), how many are still
 * needed, the groups the approvals cover together, and why the last approval was voided.
 */
function approvalGate(ctx: PatchContext | undefined) {
  if (ctx === undefined) return null;
  return {
    required: ctx.requiredApprovals ?? 1,
    missing: approvalsMissing(ctx),
    approvals: (ctx.approvals ?? []).map((a) => ({
      by: a.by,
      at: new Date(a.at).toISOString(),
      reason: a.reason,
      groups: a.groups ?? null,
    })),
    covers_groups: approvedGroups(ctx),
    voided: ctx.approvalVoided
      ? { reason: ctx.approvalVoided.reason, at: new Date(ctx.approvalVoided.at).toISOString() }
      : null,
  };
}

/**
 * An entry with its errata, risk profile, tests, the latest test's judgement, state, the events
 * it accepts and its approval gate, or null.
 * @example
 * const detail = await queueEntryDetail(deps, 12);
 */
export async function queueEntryDetail(deps: QueueViewDeps, id: number) {
  const item = await getQueueItem(deps.db, id);
  if (!item) return null;
  const [errata, risk, tests] = await Promise.all([
    getErrata(deps.db, item.errata_id),
    getRiskProfile(deps.db, item.errata_id),
    testsOfEntry(deps.db, id),
  ]);
  const live = deps.actors.snapshotOf(id);
  return {
    entry: item,
    errata,
    risk_profile: risk,
    tests,
    judgement: latestJudgement(tests),
    state: live ? stateLabel(live.snapshot.value) : stateLabel((item.state_value as never) ?? item.status),
    allowed_events: allowedEvents(deps, live),
    approval: approvalGate(
      live?.snapshot.context ??
        ((await loadEntry(deps.db, id))?.snapshot as { context?: PatchContext } | null)?.context,
    ),
  };
}

/**
 * An entry's journal, oldest first, without the raw state values; null when there is no such entry.
 * @example
 * const transitions = await entryTransitions(db, 12);
 */
export async function entryTransitions(db: Db, id: number) {
  if (!(await loadEntry(db, id))) return null;
  const rows = await loadJournal(db, id);
  return rows.map(({ from_value: _f, to_value: _t, ...r }) => r);
}

/**
 * The inspector's view: state, revision, owner, accepted events, the context (secrets redacted),
 * the path through the machine and the machine's graph; null when there is no such entry.
 * @example
 * const inspection = await entryInspection(deps, 12);
 */
export async function entryInspection(deps: QueueViewDeps, id: number) {
  const row = await loadEntry(deps.db, id);
  if (!row) return null;
  const live = deps.actors.snapshotOf(id);
  const snap = (row.snapshot ?? {}) as { value?: unknown; context?: unknown };
  const journal = await loadJournal(deps.db, id);
  return {
    id,
    status: row.status,
    state: stateLabel((live?.snapshot.value ?? snap.value ?? row.status) as never),
    state_value: live?.snapshot.value ?? snap.value ?? null,
    revision: row.revision,
    owner: row.owner_id,
    live: live !== undefined,
    accepted_events: allowedEvents(deps, live),
    context: redactPayload(live?.snapshot.context ?? snap.context ?? null),
    path: journal.map((j) => j.to_state),
    machine: { id: patchMachine.id, version: patchMachine.version, ...machineGraph(patchMachine) },
  };
}
