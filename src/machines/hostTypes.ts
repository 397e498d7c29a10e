/** The actor host's vocabulary: what it is given, what it keeps per actor, what it answers. */
import type { Actor, InspectionEvent, StateValue } from 'xstate';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Clock } from '../persistence/clock.ts';
import type { Db } from '../persistence/db.ts';
import type { AuditSlot } from '../persistence/sql/audit.ts';
import type { JournalHead, TransitionWrite } from '../persistence/sql/entries.ts';
import type { MetricsSink } from '../services/metrics.ts';
import type { PatchContext, PatchEvent, PatchMachine } from './patch.machine.ts';

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

export type EventWithoutTime = PatchEvent extends infer E ? (E extends { at: number } ? Omit<E, 'at'> : never) : never;

export interface PendingWrite {
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

export interface Hosted {
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

/** What the host tells `onCommitted` listeners: an entry's state after a committed write. */
export interface CommittedTransition {
  id: number;
  status: string;
  state: string;
  revision: number;
}

/** A write that fails for good is given up after these many attempts (then: evict, re-hydrate). */
export const MAX_WRITE_FAILURES = 5;
/** …and a database that is unreachable (transient errors) gets about two minutes. */
export const MAX_TRANSIENT_WRITE_FAILURES = 30;

export class NotAcceptedError extends AppError {
  constructor(entryId: number, eventType: string, state: string, accepted: string[]) {
    super(409, 'invalid_transition', `entry ${entryId} is ${state}: ${eventType} is not accepted there`, {
      state,
      event: eventType,
      accepted_events: accepted,
    });
  }
}
