/**
 * The patch state machine: one actor per queue entry (one errata × one target OS).
 *
 * Pure: no I/O here. Every effect is a named promise actor provided at the composition root with
 * `patchMachine.provide({ actors })`; every invoke has an explicit `id` (it is the child's key in
 * the persisted snapshot). Context is JSON-safe (epoch ms, plain objects).
 *
 * Time: the machine never uses `after` (xstate#5331: delayed transitions are not restored from a
 * snapshot). Every event and every effect result carries `at` (epoch ms from the database clock,
 * stamped by the host or the effect runner); deadlines are computed from it into `context.deadlines`,
 * and `timersFor()` derives the durable timers the scheduler must fire from the state and context.
 *
 * Effects: each invoke's input carries `key` = `entry:attempt:step`, the idempotency key the effect
 * runner records and reconciles before acting (xstate re-runs in-flight promises on restore).
 */
import { and, assign, fromPromise, setup, type SnapshotFrom, type StateValue } from 'xstate';
import { formatEffectKey } from './effectKey.ts';

export const MACHINE_VERSION = '1';

export const TARGET_OS = ['ubuntu', 'debian', 'rhel'] as const;
export type TargetOs = (typeof TARGET_OS)[number];

/** Every value of the `status` column, one per top-level state. */
export const STATUSES = [
  'queued',
  'testing',
  'needs_reboot',
  'rebooting',
  'pending_retry',
  'passed',
  'failed',
  'pending_approval',
  'snoozed',
  'approved',
  'rejected',
  'promoting',
  'prod_pending',
  'prod_applied',
  'prod_rollback',
  'completed',
  'rolled_back',
  'removed',
  'needs_attention',
] as const;
export type Status = (typeof STATUSES)[number];
export const FINAL_STATUSES: readonly Status[] = ['completed', 'rejected', 'rolled_back', 'removed'];
/** States that exist only once production work has begun: never without a passed test and an approval. */
export const PROD_STATUSES: readonly Status[] = [
  'approved',
  'promoting',
  'prod_pending',
  'prod_applied',
  'prod_rollback',
  'completed',
];

/** Steps that run an effect; a transient failure in any of them goes to pending_retry and back. */
export const STEPS = [
  'snapshot',
  'baseline',
  'apply',
  'await_action',
  'check_reboot',
  'validate',
  'reboot',
  'rollback_test',
  'promote',
  'plan_deployment',
  'deploy_wave',
  'verify_deployment',
  'rollback_prod',
] as const;
export type Step = (typeof STEPS)[number];
const TEST_STEPS: readonly Step[] = [
  'snapshot',
  'baseline',
  'apply',
  'await_action',
  'check_reboot',
  'validate',
  'reboot',
];

export type TimerName = 'step_timeout' | 'stabilize' | 'reboot_timeout' | 'settle' | 'retry' | 'snooze' | 'window';

/** Waits and limits, copied into the context when the entry is created so a restart cannot change them mid-test. */
export interface Settings {
  waitAfterPatchMs: number;
  waitAfterRebootMs: number;
  rebootTimeoutMs: number;
  stepTimeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  retryMaxAttempts: number;
  /** An approval older than this when production would start is void (a new approval is needed). */
  approvalMaxAgeMs?: number;
}

/** Used when an entry was created before approvals could expire (its settings have no age). */
export const DEFAULT_APPROVAL_MAX_AGE_MS = 72 * 3_600_000;

export interface PatchInput {
  entryId: number;
  errataId: string;
  targetOs: TargetOs;
  settings: Settings;
  /** Who queued it (may not approve it under separation of duties). */
  queuedBy?: string;
  /** Distinct approvers needed (2 for Critical severity / Very High risk by policy); 1 by default. */
  requiredApprovals?: number;
  /** Enforce separation of duties (the policy's `separation_of_duties`, on by default there). */
  separationOfDuties?: boolean;
}

export type RollbackType = 'package' | 'system';
export type Phase = 'test' | 'test_rollback' | 'prod' | 'prod_rollback';

export interface PatchContext {
  entryId: number;
  errataId: string;
  targetOs: TargetOs;
  settings: Settings;
  /** Test attempt (1-based once a test starts); part of every test effect key. */
  attempt: number;
  /** Production attempt; part of every production effect key. */
  prodAttempt: number;
  /** How many times the pending-approval notification was sent (snooze re-notifies). */
  approvalRound: number;
  /**
   * Operator retries from needs_attention. Part of every effect key, so that a retried step runs
   * again instead of returning the failure recorded under its old key.
   */
  round: number;
  testSystem: { id: number | null; name: string } | null;
  deadlines: Partial<Record<TimerName, number>>;
  retry: { step: Step; count: number } | null;
  test: {
    snapshotId: string | null;
    baselineTaken: boolean;
    actionIds: number[];
    applyMessage: string | null;
    rebootRequired: boolean | null;
    rebootActionId: number | null;
    verdict: 'pass' | 'fail' | 'inconclusive' | null;
    evidence: unknown;
    startedAt: number | null;
    finishedAt: number | null;
  };
  failure: { reason: string; at: number; step: Step | null } | null;
  approval: { action: 'approved' | 'rejected' | 'snoozed'; by: string; at: number; reason: string | null } | null;
  snoozeUntil: number | null;
  prod: {
    deploymentId: number | null;
    waveIndex: number;
    waveCount: number;
    windowOpensAt: number | null;
    windowClosesAt: number | null;
    haltReason: string | null;
    /** Plans made for this production attempt (a closed window means a new plan: a new effect key). */
    plans: number;
  };
  rollback: {
    scope: 'test' | 'prod';
    type: RollbackType | null;
    systems: number[] | null;
    by: string;
    reason: string;
  } | null;
  attention: { reason: string; phase: Phase; at: number } | null;
  resolution: string | null;
  lastError: { step: Step; message: string; transient: boolean; at: number } | null;
  /**
   * Separation of duties (issue 12). People who queued, tested, retried or forced this entry may
   * not approve it; `approvals` are this round's distinct approvers (the gate opens at
   * `requiredApprovals`). Optional: entries persisted before the gate had them start empty.
   */
  involved?: { by: string; as: 'queued' | 'tested' | 'retried' | 'forced' }[];
  /**
   * `groups`: the production groups the errata targeted when this approver approved (absent on
   * approvals given before approvals were bound to their target groups).
   */
  approvals?: { by: string; at: number; reason: string | null; groups?: string[] }[];
  requiredApprovals?: number;
  separationOfDuties?: boolean;
  /** Why the last approval was voided (the errata changed, or it expired before production). */
  approvalVoided?: { reason: string; at: number } | null;
}

/** Why `by` may not approve now (or null): the rule the API answers 403 with. */
export function approvalRefusal(context: PatchContext, by: string): 'self_approval' | 'already_approved' | null {
  if (context.separationOfDuties === true && (context.involved ?? []).some((p) => p.by === by)) return 'self_approval';
  if ((context.approvals ?? []).some((a) => a.by === by)) return 'already_approved';
  return null;
}

/**
 * The production groups every approval of this round covers: a deployment may target only these
 * (a group added since is not approved). Null when an approval carries no groups (given before
 * approvals were bound to their target groups): unbound, as it was approved.
 * @example approvedGroups(ctx) // ['prod-web'] when one approver saw prod-web and prod-db, another prod-web
 */
export function approvedGroups(context: PatchContext): string[] | null {
  const sets = (context.approvals ?? []).map((a) => a.groups);
  if (sets.length === 0 || sets.some((g) => g === undefined)) return null;
  return sets.reduce<string[]>((acc, g) => acc.filter((x) => g!.includes(x)), sets[0]!).sort();
}

/** Approvals still needed after the ones given this round. */
export function approvalsMissing(context: PatchContext): number {
  return Math.max(0, (context.requiredApprovals ?? 1) - (context.approvals ?? []).length);
}

/** Distinct approvers the entry needs once this event is counted (an APPROVE may raise it, never lower it). */
function requiredWith(context: PatchContext, event: PatchEvent): number {
  return Math.max(context.requiredApprovals ?? 1, event.type === 'APPROVE' ? (event.requiredApprovals ?? 0) : 0);
}

const involve = (context: PatchContext, by: string, as: 'queued' | 'tested' | 'retried' | 'forced') =>
  by === 'scheduler' || (context.involved ?? []).some((p) => p.by === by && p.as === as)
    ? (context.involved ?? [])
    : [...(context.involved ?? []), { by, as }];

// ---------------------------------------------------------------------------------------------
// Events. Every event carries `at` (epoch ms, database clock). Operator events carry `by`.

interface Stamp {
  at: number;
}
interface ByOperator extends Stamp {
  by: string;
}
export type PatchEvent =
  | ({ type: 'RESUME' } & Stamp)
  | ({ type: 'START_TEST'; testSystem?: { id: number | null; name: string } } & ByOperator)
  | ({ type: 'REMOVE'; reason?: string } & ByOperator)
  | ({ type: 'ABORT'; reason: string } & ByOperator)
  /**
   * `requiredApprovals`: what the approval policy asks of the errata now (its severity may have
   * been raised since it was queued); the gate needs the larger of it and the entry's own.
   * `groups`: the production groups the errata targets as the approver approves it (the approval
   * covers these and no others).
   */
  | ({ type: 'APPROVE'; reason?: string; requiredApprovals?: number; groups?: string[] } & ByOperator)
  | ({ type: 'REJECT'; reason: string } & ByOperator)
  | ({ type: 'SNOOZE'; reason: string; until: number } & ByOperator)
  | ({ type: 'ROLLBACK_TEST'; reason: string } & ByOperator)
  | ({ type: 'START_DEPLOYMENT' } & ByOperator)
  | ({ type: 'ROLLBACK'; reason: string; rollbackType: RollbackType; systems?: number[] } & ByOperator)
  | ({ type: 'RETRY'; reason?: string } & ByOperator)
  | ({ type: 'MARK_FAILED'; reason: string } & ByOperator)
  | ({ type: 'FORCE_ROLLBACK'; reason: string; rollbackType?: RollbackType; systems?: number[] } & ByOperator)
  /** The errata changed in UYUNI (version, packages) since it was approved: the approval is void. */
  | ({ type: 'ERRATA_CHANGED'; reason: string } & ByOperator)
  | ({ type: 'TIMER'; name: TimerName } & Stamp);

export type OperatorEventType = Exclude<PatchEvent['type'], 'RESUME' | 'TIMER' | 'ERRATA_CHANGED'>;
export const OPERATOR_EVENTS: readonly OperatorEventType[] = [
  'START_TEST',
  'REMOVE',
  'ABORT',
  'APPROVE',
  'REJECT',
  'SNOOZE',
  'ROLLBACK_TEST',
  'START_DEPLOYMENT',
  'ROLLBACK',
  'RETRY',
  'MARK_FAILED',
  'FORCE_ROLLBACK',
];

// ---------------------------------------------------------------------------------------------
// Effect inputs and outputs. `at` on outputs and errors is stamped by the effect runner.

export interface EffectInput {
  key: string;
  entryId: number;
  errataId: string;
  targetOs: TargetOs;
  attempt: number;
  testSystem: { id: number | null; name: string } | null;
}
export interface Done {
  at: number;
}
/** What an effect rejects with (JSON-safe). `transient` = a dependency was unreachable; retry later. */
export interface EffectFailure {
  message: string;
  transient: boolean;
  at: number;
}

export type NotifyKind = 'pending_approval' | 'approved';
export interface Effects {
  takeSnapshot: { in: EffectInput; out: Done & { snapshotId: string } };
  collectBaseline: { in: EffectInput; out: Done };
  applyErrata: { in: EffectInput; out: Done & { actionIds: number[] } };
  awaitAction: { in: EffectInput & { actionIds: number[] }; out: Done & { ok: boolean; message: string } };
  checkReboot: { in: EffectInput; out: Done & { required: boolean } };
  scheduleReboot: { in: EffectInput; out: Done & { actionId: number } };
  awaitHost: { in: EffectInput & { rebootActionId: number | null }; out: Done };
  validate: {
    in: EffectInput;
    out: Done & { verdict: 'pass' | 'fail' | 'inconclusive'; reason: string | null; evidence: unknown };
  };
  rollbackTest: {
    in: EffectInput & { rebootRequired: boolean; snapshotId: string | null; reason: string };
    out: Done & { type: RollbackType };
  };
  notify: { in: EffectInput & { kind: NotifyKind; round: number }; out: Done };
  promote: { in: EffectInput; out: Done & { skipped: boolean } };
  planDeployment: {
    /** `approvedGroups`: the groups the approvals cover (`approvedGroups()`), null when unbound. */
    in: EffectInput & { approvedBy: string | null; approvedGroups: string[] | null };
    /** Planned; or `scopeChanged`: the errata now targets a group the approval does not cover (nothing planned). */
    out: Done &
      (
        | {
            deploymentId: number;
            waveCount: number;
            windowOpensAt: number;
            windowClosesAt: number | null;
            scopeChanged?: undefined;
          }
        | { scopeChanged: string }
      );
  };
  deployWave: {
    in: EffectInput & { deploymentId: number; waveIndex: number };
    out: Done & { outcome: 'ok' | 'halted' | 'window_closed'; reason: string | null };
  };
  verifyDeployment: { in: EffectInput & { deploymentId: number }; out: Done & { ok: boolean; reason: string | null } };
  rollbackProduction: {
    in: EffectInput & {
      deploymentId: number | null;
      rollbackType: RollbackType;
      systems: number[] | null;
      reason: string;
    };
    out: Done;
  };
}
export type EffectName = keyof Effects;
/** What an effect's port returns: its output without `at` (the host stamps it), variant by variant. */
export type EffectOut<N extends EffectName> = Effects[N]['out'] extends infer O
  ? O extends unknown
    ? Omit<O, 'at'>
    : never
  : never;

/** What a state says about itself (read by `timersFor()` and the lanes, never re-listed elsewhere). */
export interface StateMeta {
  /** The durable timer this state arms: its deadline is in `context.deadlines` (snooze: `snoozeUntil`). */
  timer?: TimerName;
}
/**
 * - `occupies_test_system`: an entry here holds its test system (a lane keeps it busy);
 * - `holds_test_system_in_test_phase`: it holds it only while it waits on behalf of the test
 *   (pending_retry of a test step, needs_attention of a test or its rollback).
 */
export type StateTag = 'occupies_test_system' | 'holds_test_system_in_test_phase';
type Verdict = Effects['validate']['out']['verdict'];
type WaveOutcome = Effects['deployWave']['out']['outcome'];

/** What an operator's action records: who, why, when (the params of the record* actions). */
interface OperatorAct {
  by: string;
  reason?: string | undefined;
  at: number;
}
const act = ({ event }: { event: { by: string; reason?: string; at: number } }): OperatorAct => ({
  by: event.by,
  reason: event.reason,
  at: event.at,
});
const reasonOf = ({ event }: { event: { reason?: string } }) => ({ reason: event.reason });
/** The `hasReason` guard with the event's reason. */
const withReason = { type: 'hasReason' as const, params: reasonOf };

function notProvided(name: string) {
  return async (): Promise<never> => {
    throw new Error(`effect ${name} was not provided to the patch machine`);
  };
}
function effect<N extends EffectName>(name: N) {
  return fromPromise<Effects[N]['out'], Effects[N]['in']>(notProvided(name));
}

// ---------------------------------------------------------------------------------------------
// Helpers (pure).

/** The time of the event that caused a transition: operator/timer events, effect results and failures all carry `at`. */
export function eventTime(event: unknown): number {
  const e = event as { at?: unknown; output?: { at?: unknown }; error?: { at?: unknown } };
  if (typeof e.at === 'number') return e.at;
  if (typeof e.output?.at === 'number') return e.output.at;
  if (typeof e.error?.at === 'number') return e.error.at;
  // Only xstate.init lacks a time, and the initial state (queued) arms no deadline.
  return 0;
}

export function failureOf(error: unknown): EffectFailure {
  const e = error as Partial<EffectFailure> & { message?: unknown };
  return {
    message: typeof e?.message === 'string' ? e.message : String(error),
    transient: e?.transient === true,
    at: typeof e?.at === 'number' ? e.at : 0,
  };
}

function effectInput(
  context: PatchContext,
  step: string,
  attempt: number = context.attempt,
  production = false,
): EffectInput {
  return {
    key: formatEffectKey({ entryId: context.entryId, attempt, production, step, round: context.round }),
    entryId: context.entryId,
    errataId: context.errataId,
    targetOs: context.targetOs,
    attempt,
    testSystem: context.testSystem,
  };
}
/** A production step's input: the key carries the production attempt (`7:p2:promote`). */
const prodInput = (context: PatchContext, step: string): EffectInput => ({
  ...effectInput(context, step, context.prodAttempt, true),
  attempt: context.attempt,
});

function backoffMs(s: Settings, count: number): number {
  return Math.min(s.retryMaxMs, s.retryBaseMs * 2 ** Math.max(0, count - 1));
}

const emptyTest = (): PatchContext['test'] => ({
  snapshotId: null,
  baselineTaken: false,
  actionIds: [],
  applyMessage: null,
  rebootRequired: null,
  rebootActionId: null,
  verdict: null,
  evidence: null,
  startedAt: null,
  finishedAt: null,
});

/**
 * The facts of every step, stated once: the state it runs in (pending_retry goes back there), where
 * it goes when it fails for good (not transient, or out of retries), and its phase (which decides
 * whether a failure is the test's, a rollback's, or production's).
 */
const STEP_TABLE: Record<Step, { state: string; onFailure: '#patch.failed' | '#patch.needs_attention'; phase: Phase }> =
  {
    snapshot: { state: '#patch.testing.snapshot', onFailure: '#patch.failed', phase: 'test' },
    baseline: { state: '#patch.testing.baseline', onFailure: '#patch.failed', phase: 'test' },
    apply: { state: '#patch.testing.apply', onFailure: '#patch.failed', phase: 'test' },
    await_action: { state: '#patch.testing.await_action', onFailure: '#patch.failed', phase: 'test' },
    check_reboot: { state: '#patch.testing.check_reboot', onFailure: '#patch.failed', phase: 'test' },
    // Inconclusive validation is never a pass nor the patch's fault: a human decides.
    validate: { state: '#patch.testing.validate', onFailure: '#patch.needs_attention', phase: 'test' },
    reboot: { state: '#patch.needs_reboot', onFailure: '#patch.failed', phase: 'test' },
    rollback_test: { state: '#patch.failed', onFailure: '#patch.needs_attention', phase: 'test_rollback' },
    promote: { state: '#patch.promoting', onFailure: '#patch.needs_attention', phase: 'prod' },
    plan_deployment: { state: '#patch.prod_pending.planning', onFailure: '#patch.needs_attention', phase: 'prod' },
    deploy_wave: { state: '#patch.prod_pending.deploying', onFailure: '#patch.needs_attention', phase: 'prod' },
    verify_deployment: { state: '#patch.prod_applied', onFailure: '#patch.needs_attention', phase: 'prod' },
    rollback_prod: { state: '#patch.prod_rollback', onFailure: '#patch.needs_attention', phase: 'prod_rollback' },
  };

/** The step's failure target (exported for the machine's unit tests). */
export function stepFailureTarget(step: Step): string {
  return STEP_TABLE[step].onFailure;
}

/**
 * The two ways a step's effect can fail: transient with retries left → pending_retry (and back to
 * the step when the backoff timer fires); otherwise → the step's failure target, with the reason.
 */
function onStepError(step: Step) {
  const failure = ({ event }: { event: { error?: unknown } }) => ({ step, failure: failureOf(event.error) });
  return [
    {
      guard: { type: 'retryable' as const, params: failure },
      target: '#patch.pending_retry',
      actions: { type: 'scheduleRetry' as const, params: failure },
    },
    { target: STEP_TABLE[step].onFailure, actions: { type: 'recordStepError' as const, params: failure } },
  ];
}

/** One approver's approval as the round records it (with the groups it covers, when the event says). */
const approvalOf = (e: Extract<PatchEvent, { type: 'APPROVE' }>) => ({
  by: e.by,
  at: e.at,
  reason: e.reason ?? null,
  ...(e.groups !== undefined ? { groups: [...e.groups].sort() } : {}),
});

const voidedBy = ({ event }: { event: { at: number; reason: string } }) => ({ reason: event.reason, at: event.at });
const expired = ({ context, event }: { context: PatchContext; event: { at: number } }) => ({
  reason: `approval expired: older than ${Math.round((context.settings.approvalMaxAgeMs ?? DEFAULT_APPROVAL_MAX_AGE_MS) / 3_600_000)} h when production was to start`,
  at: event.at,
});

/**
 * APPROVE under separation of duties: the last approval needed opens the gate; an earlier one (two
 * distinct approvers for Critical) is recorded and the gate stays closed.
 */
function approveTransitions() {
  return [
    {
      guard: and(['testPassed', 'mayApprove', 'lastApprovalNeeded']),
      target: '#patch.approved',
      actions: 'recordApproval' as const,
    },
    { guard: and(['testPassed', 'mayApprove']), actions: 'recordPartialApproval' as const },
  ];
}

// ---------------------------------------------------------------------------------------------

export const patchMachine = setup({
  types: {
    context: {} as PatchContext,
    events: {} as PatchEvent,
    input: {} as PatchInput,
    meta: {} as StateMeta,
    tags: {} as StateTag,
  },
  actors: {
    takeSnapshot: effect('takeSnapshot'),
    collectBaseline: effect('collectBaseline'),
    applyErrata: effect('applyErrata'),
    awaitAction: effect('awaitAction'),
    checkReboot: effect('checkReboot'),
    scheduleReboot: effect('scheduleReboot'),
    awaitHost: effect('awaitHost'),
    validate: effect('validate'),
    rollbackTest: effect('rollbackTest'),
    notify: effect('notify'),
    promote: effect('promote'),
    planDeployment: effect('planDeployment'),
    deployWave: effect('deployWave'),
    verifyDeployment: effect('verifyDeployment'),
    rollbackProduction: effect('rollbackProduction'),
  },
  guards: {
    isTimer: ({ event }, params: { name: TimerName }) => event.type === 'TIMER' && event.name === params.name,
    retryable: ({ context }, params: { failure: EffectFailure }) =>
      params.failure.transient && (context.retry?.count ?? 0) < context.settings.retryMaxAttempts,
    retryStepIs: ({ context }, params: { step: Step }) => context.retry?.step === params.step,
    rebootRequired: (_, params: { required: boolean }) => params.required,
    actionSucceeded: (_, params: { ok: boolean }) => params.ok,
    verdictPass: (_, params: { verdict: Verdict }) => params.verdict === 'pass',
    verdictFail: (_, params: { verdict: Verdict }) => params.verdict === 'fail',
    /** The approval gate: production work needs a passed test with evidence. */
    testPassed: ({ context }) => context.test.verdict === 'pass' && context.test.evidence != null,
    /** Separation of duties: nobody approves what they queued, tested, retried or forced, nor twice. */
    mayApprove: ({ context, event }) => event.type === 'APPROVE' && approvalRefusal(context, event.by) === null,
    /** This approval is the last one needed (two distinct approvers for Critical, by policy). */
    lastApprovalNeeded: ({ context, event }) =>
      approvalsMissing({ ...context, requiredApprovals: requiredWith(context, event) }) <= 1,
    /** The approval is young enough for production to start under it. */
    approvalFresh: ({ context, event }) =>
      context.approval?.action === 'approved' &&
      event.at - context.approval.at <= (context.settings.approvalMaxAgeMs ?? DEFAULT_APPROVAL_MAX_AGE_MS),
    hasReason: (_, params: { reason: string | undefined }) =>
      typeof params.reason === 'string' && params.reason.trim().length > 0,
    snoozeInFuture: ({ event }) => event.type === 'SNOOZE' && event.until > event.at && event.reason.trim().length > 0,
    /** The plan would reach a production group the approvals do not cover. */
    scopeChanged: (_, params: { reason: string | undefined }) => typeof params.reason === 'string',
    waveHalted: (_, params: { outcome: WaveOutcome }) => params.outcome === 'halted',
    windowClosed: (_, params: { outcome: WaveOutcome }) => params.outcome === 'window_closed',
    deploymentOk: (_, params: { ok: boolean }) => params.ok,
    moreWaves: ({ context }) => context.prod.waveIndex + 1 < context.prod.waveCount,
    attentionPhaseIs: ({ context }, params: { phases: Phase[] }) =>
      context.attention !== null && params.phases.includes(context.attention.phase),
    inProduction: ({ context }) => context.prod.deploymentId !== null,
  },
  actions: {
    beginTest: assign(({ context, event }) => ({
      involved:
        'by' in event && typeof event.by === 'string'
          ? involve(context, event.by, event.type === 'RETRY' ? 'retried' : 'tested')
          : (context.involved ?? []),
      approvals: [],
      attempt: context.attempt + 1,
      testSystem: event.type === 'START_TEST' && event.testSystem ? event.testSystem : context.testSystem,
      test: { ...emptyTest(), startedAt: eventTime(event) },
      failure: null,
      retry: null,
      lastError: null,
      attention: null,
      approval: null,
      deadlines: {},
    })),
    /** Arms the step timeout of the state being entered (entry action: not re-run on restore). */
    armStepTimeout: assign(({ context, event }) => ({
      deadlines: { ...context.deadlines, step_timeout: eventTime(event) + context.settings.stepTimeoutMs },
    })),
    clearStepTimeout: assign(({ context }) => {
      const { step_timeout: _drop, ...rest } = context.deadlines;
      return { deadlines: rest };
    }),
    armStabilize: assign(({ context, event }) => ({
      deadlines: { ...context.deadlines, stabilize: eventTime(event) + context.settings.waitAfterPatchMs },
    })),
    armRebootTimeout: assign(({ context, event }) => ({
      deadlines: { ...context.deadlines, reboot_timeout: eventTime(event) + context.settings.rebootTimeoutMs },
    })),
    armSettle: assign(({ context, event }) => ({
      deadlines: { ...context.deadlines, settle: eventTime(event) + context.settings.waitAfterRebootMs },
    })),
    resetRetry: assign({ retry: null }),
    recordSnapshot: assign(({ context }, params: { snapshotId: string }) => ({
      test: { ...context.test, snapshotId: params.snapshotId },
    })),
    recordBaseline: assign(({ context }) => ({ test: { ...context.test, baselineTaken: true } })),
    recordActions: assign(({ context }, params: { actionIds: number[] }) => ({
      test: { ...context.test, actionIds: params.actionIds },
    })),
    recordActionResult: assign(({ context }, params: { message: string }) => ({
      test: { ...context.test, applyMessage: params.message },
    })),
    recordRebootCheck: assign(({ context }, params: { required: boolean }) => ({
      test: { ...context.test, rebootRequired: params.required },
    })),
    recordRebootAction: assign(({ context }, params: { actionId: number }) => ({
      test: { ...context.test, rebootActionId: params.actionId },
    })),
    recordVerdict: assign(({ context }, out: Effects['validate']['out']) => {
      return {
        test: { ...context.test, verdict: out.verdict, evidence: out.evidence ?? null, finishedAt: out.at },
        failure:
          out.verdict === 'pass'
            ? null
            : { reason: out.reason ?? `verdict ${out.verdict}`, at: out.at, step: 'validate' as Step },
        attention:
          out.verdict === 'inconclusive'
            ? { reason: out.reason ?? 'no evidence: validation inconclusive', phase: 'test' as Phase, at: out.at }
            : context.attention,
      };
    }),
    recordFailure: assign((_, params: { reason: string; at: number; step: Step | null }) => ({ failure: params })),
    recordApplyFailure: assign(({ context }, out: { message: string; at: number }) => {
      return {
        failure: {
          reason: `apply failed on ${context.testSystem?.name ?? 'test system'}: ${out.message}`,
          at: out.at,
          step: 'await_action' as Step,
        },
      };
    }),
    scheduleRetry: assign(({ context }, params: { step: Step; failure: EffectFailure }) => {
      const f = params.failure;
      const count = (context.retry?.step === params.step ? context.retry.count : 0) + 1;
      return {
        retry: { step: params.step, count },
        lastError: { step: params.step, message: f.message, transient: true, at: f.at },
        deadlines: { ...context.deadlines, retry: f.at + backoffMs(context.settings, count) },
      };
    }),
    recordStepError: assign(({ context }, params: { step: Step; failure: EffectFailure }) => {
      const f = params.failure;
      const reason = `${params.step} failed${f.transient ? ` after ${context.retry?.count ?? 0} retries` : ''}: ${f.message}`;
      const { phase, onFailure } = STEP_TABLE[params.step];
      const toAttention = onFailure === '#patch.needs_attention';
      return {
        lastError: { step: params.step, message: f.message, transient: f.transient, at: f.at },
        failure: phase === 'test' && !toAttention ? { reason, at: f.at, step: params.step } : context.failure,
        attention: toAttention ? { reason, phase, at: f.at } : context.attention,
        retry: null,
      };
    }),
    recordTimeout: assign(({ context, event }) => {
      const step = context.retry?.step ?? null;
      return { failure: { reason: `step timed out${step ? ` (${step})` : ''}`, at: eventTime(event), step } };
    }),
    recordAbort: assign((_, e: OperatorAct) => ({
      failure: { reason: `aborted by ${e.by}: ${e.reason ?? ''}`.trim(), at: e.at, step: null },
    })),
    recordManualTestRollback: assign((_, e: OperatorAct) => ({
      failure: { reason: `manual rollback by ${e.by}: ${e.reason ?? ''}`.trim(), at: e.at, step: null },
    })),
    recordRebootTimeout: assign(({ context, event }) => ({
      failure: {
        reason:
          `host ${context.testSystem?.name ?? ''} did not return within ${Math.round(context.settings.rebootTimeoutMs / 1000)} s after reboot`.replace(
            '  ',
            ' ',
          ),
        at: eventTime(event),
        step: 'reboot' as Step,
      },
    })),
    /** One approver of several: recorded; the gate stays closed until enough distinct ones approved. */
    recordPartialApproval: assign(({ context, event }) => ({
      approvals: [...(context.approvals ?? []), ...(event.type === 'APPROVE' ? [approvalOf(event)] : [])],
      requiredApprovals: requiredWith(context, event),
    })),
    recordApproval: assign(({ context, event }) => {
      if (event.type === 'APPROVE') {
        return {
          approval: { action: 'approved' as const, by: event.by, at: event.at, reason: event.reason ?? null },
          approvals: [...(context.approvals ?? []), approvalOf(event)],
          requiredApprovals: requiredWith(context, event),
          approvalVoided: null,
        };
      }
      if (event.type === 'REJECT')
        return { approval: { action: 'rejected' as const, by: event.by, at: event.at, reason: event.reason } };
      if (event.type === 'SNOOZE')
        return {
          approval: { action: 'snoozed' as const, by: event.by, at: event.at, reason: event.reason },
          snoozeUntil: event.until,
        };
      return {};
    }),
    nextApprovalRound: assign(({ context }) => ({ approvalRound: context.approvalRound + 1 })),
    beginProduction: assign(({ context }) => ({
      prodAttempt: context.prodAttempt + 1,
      prod: {
        deploymentId: null,
        waveIndex: 0,
        waveCount: 0,
        windowOpensAt: null,
        windowClosesAt: null,
        haltReason: null,
        plans: 0,
      },
    })),
    recordPlan: assign(({ context }, out: Extract<Effects['planDeployment']['out'], { deploymentId: number }>) => {
      return {
        prod: {
          ...context.prod,
          deploymentId: out.deploymentId,
          waveCount: out.waveCount,
          windowOpensAt: out.windowOpensAt,
          windowClosesAt: out.windowClosesAt,
          plans: context.prod.plans + 1,
        },
        deadlines: { ...context.deadlines, window: out.windowOpensAt },
      };
    }),
    nextWave: assign(({ context }) => ({ prod: { ...context.prod, waveIndex: context.prod.waveIndex + 1 } })),
    recordHalt: assign(({ context }, out: Effects['deployWave']['out']) => {
      const reason = `wave ${context.prod.waveIndex} halted: ${out.reason ?? 'error threshold exceeded'}`;
      return {
        prod: { ...context.prod, haltReason: reason },
        attention: { reason, phase: 'prod' as Phase, at: out.at },
      };
    }),
    recordVerifyFailure: assign((_, out: Effects['verifyDeployment']['out']) => {
      return {
        rollback: {
          scope: 'prod' as const,
          type: 'package' as RollbackType,
          systems: null,
          by: 'policy',
          reason: `post-deployment checks failed: ${out.reason ?? 'unknown'}`,
        },
      };
    }),
    recordRollbackRequest: assign(({ context, event }) => {
      if (event.type !== 'ROLLBACK' && event.type !== 'FORCE_ROLLBACK') return {};
      const scope =
        context.prod.deploymentId !== null &&
        (context.attention === null ||
          context.attention.phase === 'prod' ||
          context.attention.phase === 'prod_rollback')
          ? 'prod'
          : 'test';
      return {
        rollback: {
          scope,
          type: event.rollbackType ?? 'package',
          systems: event.systems && event.systems.length > 0 ? event.systems : null,
          by: event.by,
          reason: event.reason,
        },
      } as Partial<PatchContext>;
    }),
    /** The approval no longer holds (the errata changed, or it expired): back to the approvers. */
    voidApproval: assign((_, v: { reason: string; at: number }) => ({
      approval: null,
      approvals: [],
      approvalVoided: { reason: v.reason, at: v.at },
    })),
    involveForcer: assign(({ context }, e: OperatorAct) => ({ involved: involve(context, e.by, 'forced') })),
    recordRetry: assign(({ context }) => ({
      attention: null,
      lastError: null,
      retry: null,
      resolution: null,
      round: context.round + 1,
      deadlines: { ...context.deadlines },
    })),
    recordManualFailure: assign((_, e: OperatorAct) => ({
      resolution: `marked failed by ${e.by}: ${e.reason ?? ''}`.trim(),
    })),
    recordRemoval: assign((_, e: OperatorAct) => ({
      resolution: `removed by ${e.by}${e.reason ? `: ${e.reason}` : ''}`,
    })),
    recordRollbackDone: assign(({ context }, out: { type?: RollbackType }) => {
      return {
        rollback: {
          scope: context.rollback?.scope ?? 'test',
          type: out.type ?? context.rollback?.type ?? null,
          systems: context.rollback?.systems ?? null,
          by: context.rollback?.by ?? 'policy',
          reason: context.rollback?.reason ?? context.failure?.reason ?? '',
        },
      };
    }),
    recordTestRollbackStart: assign(({ context }) => ({
      rollback:
        context.rollback?.scope === 'test'
          ? context.rollback
          : {
              scope: 'test' as const,
              type: null,
              systems: null,
              by: 'policy',
              reason: context.failure?.reason ?? 'test failed',
            },
    })),
  },
}).createMachine({
  id: 'patch',
  version: MACHINE_VERSION,
  initial: 'queued',
  context: ({ input }) => ({
    entryId: input.entryId,
    errataId: input.errataId,
    targetOs: input.targetOs,
    settings: input.settings,
    attempt: 0,
    prodAttempt: 0,
    approvalRound: 0,
    round: 0,
    testSystem: null,
    deadlines: {},
    retry: null,
    test: emptyTest(),
    failure: null,
    approval: null,
    snoozeUntil: null,
    prod: {
      deploymentId: null,
      waveIndex: 0,
      waveCount: 0,
      windowOpensAt: null,
      windowClosesAt: null,
      haltReason: null,
      plans: 0,
    },
    rollback: null,
    attention: null,
    resolution: null,
    lastError: null,
    involved: input.queuedBy ? [{ by: input.queuedBy, as: 'queued' as const }] : [],
    approvals: [],
    requiredApprovals: Math.max(1, input.requiredApprovals ?? 1),
    separationOfDuties: input.separationOfDuties === true,
    approvalVoided: null,
  }),
  // RESUME is sent after every hydration. Timers live in the `timers` table (derived from state and
  // context), so nothing needs re-arming in memory: RESUME is accepted everywhere and changes nothing.
  on: { RESUME: {} },
  states: {
    queued: {
      on: {
        START_TEST: { target: 'testing', actions: 'beginTest' },
        REMOVE: { target: 'removed', actions: { type: 'recordRemoval', params: act } },
      },
    },

    testing: {
      description: 'The test runs on the test system: snapshot, baseline, apply, wait, reboot check, validation.',
      tags: ['occupies_test_system'],
      initial: 'snapshot',
      on: {
        ABORT: { target: 'failed', actions: { type: 'recordAbort', params: act } },
        TIMER: {
          guard: { type: 'isTimer', params: { name: 'step_timeout' } },
          target: 'failed',
          actions: 'recordTimeout',
        },
      },
      states: {
        snapshot: {
          meta: { timer: 'step_timeout' },
          entry: 'armStepTimeout',
          invoke: {
            id: 'takeSnapshot',
            src: 'takeSnapshot',
            input: ({ context }) => effectInput(context, 'snapshot'),
            onDone: {
              target: 'baseline',
              actions: [
                { type: 'recordSnapshot', params: ({ event }) => ({ snapshotId: event.output.snapshotId }) },
                'resetRetry',
              ],
            },
            onError: onStepError('snapshot'),
          },
        },
        baseline: {
          meta: { timer: 'step_timeout' },
          entry: 'armStepTimeout',
          invoke: {
            id: 'collectBaseline',
            src: 'collectBaseline',
            input: ({ context }) => effectInput(context, 'baseline'),
            onDone: { target: 'apply', actions: ['recordBaseline', 'resetRetry'] },
            onError: onStepError('baseline'),
          },
        },
        apply: {
          meta: { timer: 'step_timeout' },
          entry: 'armStepTimeout',
          invoke: {
            id: 'applyErrata',
            src: 'applyErrata',
            input: ({ context }) => effectInput(context, 'apply'),
            onDone: {
              target: 'await_action',
              actions: [
                { type: 'recordActions', params: ({ event }) => ({ actionIds: event.output.actionIds }) },
                'resetRetry',
              ],
            },
            onError: onStepError('apply'),
          },
        },
        await_action: {
          meta: { timer: 'step_timeout' },
          entry: 'armStepTimeout',
          invoke: {
            id: 'awaitAction',
            src: 'awaitAction',
            input: ({ context }) => ({ ...effectInput(context, 'await_action'), actionIds: context.test.actionIds }),
            onDone: [
              {
                guard: { type: 'actionSucceeded', params: ({ event }) => ({ ok: event.output.ok }) },
                target: 'stabilize',
                actions: [
                  { type: 'recordActionResult', params: ({ event }) => ({ message: event.output.message }) },
                  'resetRetry',
                ],
              },
              {
                target: '#patch.failed',
                actions: [
                  { type: 'recordActionResult', params: ({ event }) => ({ message: event.output.message }) },
                  {
                    type: 'recordApplyFailure',
                    params: ({ event }) => ({ message: event.output.message, at: event.output.at }),
                  },
                ],
              },
            ],
            onError: onStepError('await_action'),
          },
        },
        stabilize: {
          description: 'Waiting for the system to settle after the patch before the reboot check.',
          meta: { timer: 'stabilize' },
          entry: ['clearStepTimeout', 'armStabilize'],
          on: { TIMER: { guard: { type: 'isTimer', params: { name: 'stabilize' } }, target: 'check_reboot' } },
        },
        check_reboot: {
          meta: { timer: 'step_timeout' },
          entry: 'armStepTimeout',
          invoke: {
            id: 'checkReboot',
            src: 'checkReboot',
            input: ({ context }) => effectInput(context, 'check_reboot'),
            onDone: [
              {
                guard: { type: 'rebootRequired', params: ({ event }) => ({ required: event.output.required }) },
                target: '#patch.needs_reboot',
                actions: [
                  { type: 'recordRebootCheck', params: ({ event }) => ({ required: event.output.required }) },
                  'resetRetry',
                ],
              },
              {
                target: 'validate',
                actions: [
                  { type: 'recordRebootCheck', params: ({ event }) => ({ required: event.output.required }) },
                  'resetRetry',
                ],
              },
            ],
            onError: onStepError('check_reboot'),
          },
        },
        validate: {
          meta: { timer: 'step_timeout' },
          entry: 'armStepTimeout',
          invoke: {
            id: 'validate',
            src: 'validate',
            input: ({ context }) => effectInput(context, 'validate'),
            onDone: [
              {
                guard: { type: 'verdictPass', params: ({ event }) => ({ verdict: event.output.verdict }) },
                target: '#patch.passed',
                actions: [{ type: 'recordVerdict', params: ({ event }) => event.output }, 'resetRetry'],
              },
              {
                guard: { type: 'verdictFail', params: ({ event }) => ({ verdict: event.output.verdict }) },
                target: '#patch.failed',
                actions: [{ type: 'recordVerdict', params: ({ event }) => event.output }, 'resetRetry'],
              },
              // Inconclusive (no evidence): never a pass; a human decides.
              {
                target: '#patch.needs_attention',
                actions: [{ type: 'recordVerdict', params: ({ event }) => event.output }, 'resetRetry'],
              },
            ],
            onError: onStepError('validate'),
          },
        },
      },
    },

    needs_reboot: {
      description: 'The patch needs a reboot: scheduling it through UYUNI.',
      tags: ['occupies_test_system'],
      meta: { timer: 'step_timeout' },
      entry: 'armStepTimeout',
      on: {
        ABORT: { target: 'failed', actions: { type: 'recordAbort', params: act } },
        TIMER: {
          guard: { type: 'isTimer', params: { name: 'step_timeout' } },
          target: 'failed',
          actions: 'recordTimeout',
        },
      },
      invoke: {
        id: 'scheduleReboot',
        src: 'scheduleReboot',
        input: ({ context }) => effectInput(context, 'reboot'),
        onDone: {
          target: 'rebooting',
          actions: [
            { type: 'recordRebootAction', params: ({ event }) => ({ actionId: event.output.actionId }) },
            'resetRetry',
          ],
        },
        onError: onStepError('reboot'),
      },
    },

    rebooting: {
      tags: ['occupies_test_system'],
      initial: 'awaiting_host',
      entry: ['clearStepTimeout', 'armRebootTimeout'],
      on: { ABORT: { target: 'failed', actions: { type: 'recordAbort', params: act } } },
      states: {
        awaiting_host: {
          meta: { timer: 'reboot_timeout' },
          on: {
            TIMER: {
              guard: { type: 'isTimer', params: { name: 'reboot_timeout' } },
              target: '#patch.failed',
              actions: 'recordRebootTimeout',
            },
          },
          invoke: {
            id: 'awaitHost',
            src: 'awaitHost',
            input: ({ context }) => ({
              ...effectInput(context, 'await_host'),
              rebootActionId: context.test.rebootActionId,
            }),
            onDone: { target: 'settling' },
            // awaitHost keeps polling through transient errors; only a permanent error lands here.
            onError: {
              target: STEP_TABLE.reboot.onFailure,
              actions: {
                type: 'recordStepError',
                params: ({ event }) => ({ step: 'reboot' as Step, failure: failureOf(event.error) }),
              },
            },
          },
        },
        settling: {
          description: 'The host is back: waiting for its services to settle before validation.',
          meta: { timer: 'settle' },
          entry: 'armSettle',
          on: { TIMER: { guard: { type: 'isTimer', params: { name: 'settle' } }, target: '#patch.testing.validate' } },
        },
      },
    },

    pending_retry: {
      description: 'A step failed transiently: waiting for the backoff, then back to that step.',
      tags: ['holds_test_system_in_test_phase'],
      meta: { timer: 'retry' },
      on: {
        TIMER: STEPS.map((step) => ({
          guard: ({ context, event }: { context: PatchContext; event: PatchEvent }) =>
            event.type === 'TIMER' && event.name === 'retry' && context.retry?.step === step,
          target: STEP_TABLE[step].state,
        })),
        ABORT: {
          guard: ({ context }) => context.retry !== null && TEST_STEPS.includes(context.retry.step),
          target: 'failed',
          actions: { type: 'recordAbort', params: act },
        },
      },
    },

    passed: {
      description: 'The test passed: notifying the approvers (then pending approval).',
      entry: 'nextApprovalRound',
      invoke: {
        id: 'notifyPendingApproval',
        src: 'notify',
        input: ({ context }) => ({
          ...effectInput(context, `notify_pending_approval_${context.approvalRound}`),
          kind: 'pending_approval' as const,
          round: context.approvalRound,
        }),
        // A notification problem never blocks the approval gate: the notifier retries on its own.
        onDone: { target: 'pending_approval' },
        onError: { target: 'pending_approval' },
      },
    },

    failed: {
      description: 'The test failed or was aborted: rolling the test system back.',
      tags: ['occupies_test_system'],
      meta: { timer: 'step_timeout' },
      entry: ['recordTestRollbackStart', 'armStepTimeout'],
      on: {
        TIMER: {
          guard: { type: 'isTimer', params: { name: 'step_timeout' } },
          target: 'needs_attention',
          actions: assign(({ event }) => ({
            attention: {
              reason: 'test-system rollback timed out',
              phase: 'test_rollback' as Phase,
              at: eventTime(event),
            },
          })),
        },
      },
      invoke: {
        id: 'rollbackTest',
        src: 'rollbackTest',
        input: ({ context }) => ({
          ...effectInput(context, 'rollback_test'),
          rebootRequired: context.test.rebootRequired === true,
          snapshotId: context.test.snapshotId,
          reason: context.failure?.reason ?? 'test failed',
        }),
        onDone: {
          target: 'rolled_back',
          actions: [
            { type: 'recordRollbackDone', params: ({ event }) => ({ type: event.output.type }) },
            'clearStepTimeout',
          ],
        },
        onError: onStepError('rollback_test'),
      },
    },

    pending_approval: {
      description: 'The approval gate: a human approves, rejects or snoozes.',
      on: {
        APPROVE: approveTransitions(),
        REJECT: { guard: withReason, target: 'rejected', actions: 'recordApproval' },
        SNOOZE: { guard: 'snoozeInFuture', target: 'snoozed', actions: 'recordApproval' },
        ROLLBACK_TEST: {
          guard: withReason,
          target: 'failed',
          actions: { type: 'recordManualTestRollback', params: act },
        },
        ERRATA_CHANGED: { actions: { type: 'voidApproval', params: voidedBy } },
      },
    },

    snoozed: {
      description: 'Snoozed by an approver: back to the approvers when the snooze ends.',
      meta: { timer: 'snooze' },
      on: {
        TIMER: { guard: { type: 'isTimer', params: { name: 'snooze' } }, target: 'passed' },
        APPROVE: approveTransitions(),
        REJECT: { guard: withReason, target: 'rejected', actions: 'recordApproval' },
        ERRATA_CHANGED: { actions: { type: 'voidApproval', params: voidedBy } },
      },
    },

    approved: {
      description: 'Approved: notifying (then promoting).',
      on: { ERRATA_CHANGED: { target: 'passed', actions: { type: 'voidApproval', params: voidedBy } } },
      invoke: {
        id: 'notifyApproved',
        src: 'notify',
        input: ({ context }) => ({
          ...effectInput(context, `notify_approved_${context.approvalRound}`),
          kind: 'approved' as const,
          round: context.approvalRound,
        }),
        onDone: { target: 'promoting', actions: 'beginProduction' },
        onError: { target: 'promoting', actions: 'beginProduction' },
      },
    },

    promoting: {
      description: 'Promoting the errata through the UYUNI content lifecycle (skipped when unconfigured).',
      meta: { timer: 'step_timeout' },
      entry: 'armStepTimeout',
      on: {
        TIMER: {
          guard: { type: 'isTimer', params: { name: 'step_timeout' } },
          target: 'needs_attention',
          actions: assign(({ event }) => ({
            attention: { reason: 'CLM promotion timed out', phase: 'prod' as Phase, at: eventTime(event) },
          })),
        },
      },
      invoke: {
        id: 'promote',
        src: 'promote',
        input: ({ context }) => prodInput(context, 'promote'),
        onDone: { target: 'prod_pending', actions: ['resetRetry', 'clearStepTimeout'] },
        onError: onStepError('promote'),
      },
    },

    prod_pending: {
      initial: 'planning',
      states: {
        planning: {
          invoke: {
            id: 'planDeployment',
            src: 'planDeployment',
            input: ({ context }) => ({
              ...prodInput(context, `plan_deployment_${context.prod.plans}`),
              approvedBy: context.approval?.by ?? null,
              approvedGroups: approvedGroups(context),
            }),
            onDone: [
              // The errata now targets a group the approval does not cover: back to the approvers.
              {
                guard: { type: 'scopeChanged', params: ({ event }) => ({ reason: event.output.scopeChanged }) },
                target: '#patch.passed',
                actions: [
                  {
                    type: 'voidApproval',
                    params: ({ event }) => ({ reason: event.output.scopeChanged ?? '', at: event.output.at }),
                  },
                  'resetRetry',
                ],
              },
              {
                target: 'awaiting_window',
                actions: [
                  {
                    type: 'recordPlan',
                    params: ({ event }) => event.output as Extract<typeof event.output, { deploymentId: number }>,
                  },
                  'resetRetry',
                ],
              },
            ],
            onError: onStepError('plan_deployment'),
          },
        },
        awaiting_window: {
          description: 'Planned: waiting for the maintenance window of the next wave.',
          meta: { timer: 'window' },
          on: {
            // Production starts only under an approval young enough; an expired one goes back to the approvers.
            TIMER: [
              {
                guard: and([{ type: 'isTimer', params: { name: 'window' as const } }, 'approvalFresh']),
                target: 'deploying',
              },
              {
                guard: { type: 'isTimer', params: { name: 'window' } },
                target: '#patch.passed',
                actions: { type: 'voidApproval', params: expired },
              },
            ],
            START_DEPLOYMENT: [
              { guard: 'approvalFresh', target: 'deploying' },
              { target: '#patch.passed', actions: { type: 'voidApproval', params: expired } },
            ],
            ERRATA_CHANGED: { target: '#patch.passed', actions: { type: 'voidApproval', params: voidedBy } },
          },
        },
        deploying: {
          invoke: {
            id: 'deployWave',
            src: 'deployWave',
            input: ({ context }) => ({
              ...prodInput(context, `deploy_wave_${context.prod.waveIndex}_plan${context.prod.plans}`),
              deploymentId: context.prod.deploymentId ?? 0,
              waveIndex: context.prod.waveIndex,
            }),
            onDone: [
              {
                guard: { type: 'waveHalted', params: ({ event }) => ({ outcome: event.output.outcome }) },
                target: '#patch.needs_attention',
                actions: { type: 'recordHalt', params: ({ event }) => event.output },
              },
              // The window closed between waves: plan the rest for the next window.
              {
                guard: { type: 'windowClosed', params: ({ event }) => ({ outcome: event.output.outcome }) },
                target: 'planning',
              },
              { guard: 'moreWaves', target: 'deploying', reenter: true, actions: ['nextWave', 'resetRetry'] },
              { target: '#patch.prod_applied', actions: 'resetRetry' },
            ],
            onError: onStepError('deploy_wave'),
          },
        },
      },
    },

    prod_applied: {
      on: { ROLLBACK: { guard: withReason, target: 'prod_rollback', actions: 'recordRollbackRequest' } },
      invoke: {
        id: 'verifyDeployment',
        src: 'verifyDeployment',
        input: ({ context }) => ({
          ...prodInput(context, 'verify_deployment'),
          deploymentId: context.prod.deploymentId ?? 0,
        }),
        onDone: [
          {
            guard: { type: 'deploymentOk', params: ({ event }) => ({ ok: event.output.ok }) },
            target: 'completed',
            actions: 'resetRetry',
          },
          { target: 'prod_rollback', actions: { type: 'recordVerifyFailure', params: ({ event }) => event.output } },
        ],
        onError: onStepError('verify_deployment'),
      },
    },

    prod_rollback: {
      invoke: {
        id: 'rollbackProduction',
        src: 'rollbackProduction',
        input: ({ context }) => ({
          ...prodInput(context, 'rollback_prod'),
          deploymentId: context.prod.deploymentId,
          rollbackType: context.rollback?.type ?? 'package',
          systems: context.rollback?.systems ?? null,
          reason: context.rollback?.reason ?? 'rollback',
        }),
        // A production rollback reports no type of its own: the requested one stands.
        onDone: { target: 'rolled_back', actions: [{ type: 'recordRollbackDone', params: {} }, 'resetRetry'] },
        onError: onStepError('rollback_prod'),
      },
    },

    needs_attention: {
      description: 'A human must decide: retry, mark failed, or force a rollback.',
      tags: ['holds_test_system_in_test_phase'],
      on: {
        RETRY: [
          {
            guard: { type: 'attentionPhaseIs', params: { phases: ['test'] } },
            target: 'testing',
            actions: ['beginTest'],
          },
          {
            guard: { type: 'attentionPhaseIs', params: { phases: ['test_rollback'] } },
            target: 'failed',
            actions: 'recordRetry',
          },
          {
            guard: and([{ type: 'attentionPhaseIs', params: { phases: ['prod'] as Phase[] } }, 'approvalFresh']),
            target: 'prod_pending',
            actions: 'recordRetry',
          },
          // Production resumes only under a fresh approval: an old one goes back to the approvers.
          {
            guard: { type: 'attentionPhaseIs', params: { phases: ['prod'] } },
            target: 'passed',
            actions: ['recordRetry', { type: 'voidApproval', params: expired }],
          },
          {
            guard: { type: 'attentionPhaseIs', params: { phases: ['prod_rollback'] } },
            target: 'prod_rollback',
            actions: 'recordRetry',
          },
        ],
        MARK_FAILED: {
          guard: withReason,
          target: 'rolled_back',
          actions: { type: 'recordManualFailure', params: act },
        },
        FORCE_ROLLBACK: [
          {
            guard: { type: 'attentionPhaseIs', params: { phases: ['prod', 'prod_rollback'] } },
            target: 'prod_rollback',
            actions: ['recordRollbackRequest', 'recordRetry', { type: 'involveForcer', params: act }],
          },
          {
            target: 'failed',
            actions: ['recordRollbackRequest', 'recordRetry', { type: 'involveForcer', params: act }],
          },
        ],
      },
    },

    completed: { type: 'final' },
    rejected: { type: 'final' },
    rolled_back: { type: 'final' },
    removed: { type: 'final' },
  },
});

export type PatchMachine = typeof patchMachine;
export type PatchSnapshot = SnapshotFrom<PatchMachine>;

/** The status column value of a state value: its top-level state. */
export function statusOf(value: StateValue): Status {
  const top = typeof value === 'string' ? value : Object.keys(value)[0];
  if (top === undefined || !(STATUSES as readonly string[]).includes(top))
    throw new Error(`state value ${JSON.stringify(value)} is not a patch status`);
  return top as Status;
}

/** A human-readable path of the state value, e.g. `testing.apply`. */
export function stateLabel(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [k, v] = Object.entries(value)[0] ?? ['?', ''];
  return v === undefined || v === '' ? k : `${k}.${stateLabel(v as StateValue)}`;
}

export interface DurableTimer {
  name: TimerName;
  fireAt: number;
}

interface StateFacts {
  timer: TimerName | null;
  tags: ReadonlySet<StateTag>;
}
/** Every state's facts by label (`testing.apply`), read once from the machine's own definition. */
const STATE_FACTS: ReadonlyMap<string, StateFacts> = (() => {
  const facts = new Map<string, StateFacts>();
  type Node = { path: string[]; meta?: StateMeta; tags: StateTag[]; states: Record<string, Node> };
  const walk = (node: Node, inherited: ReadonlySet<StateTag>) => {
    const tags = new Set([...inherited, ...node.tags]);
    if (node.path.length > 0) facts.set(node.path.join('.'), { timer: node.meta?.timer ?? null, tags });
    for (const child of Object.values(node.states)) walk(child, tags);
  };
  walk(patchMachine.root as unknown as Node, new Set());
  return facts;
})();

function factsOf(value: StateValue): StateFacts {
  const f = STATE_FACTS.get(stateLabel(value));
  if (!f) throw new Error(`state value ${JSON.stringify(value)} is not a state of the patch machine`);
  return f;
}

/**
 * The durable timers a snapshot needs: the timer its state's `meta` names, at the deadline the
 * context holds for it. The host writes them to the `timers` table in the same transaction as the
 * snapshot.
 */
export function timersFor(value: StateValue, context: PatchContext): DurableTimer[] {
  const name = factsOf(value).timer;
  if (name === null) return [];
  const fireAt = name === 'snooze' ? context.snoozeUntil : context.deadlines[name];
  return typeof fireAt === 'number' ? [{ name, fireAt }] : [];
}

/**
 * The same rule as `occupiesTestSystem`, as data a query can use (the lanes' SQL): the statuses
 * that hold the system, the pending_retry steps that hold it, the needs_attention phases that do.
 * Derived from the tags and the step table, never re-listed.
 */
export const TEST_SYSTEM_OCCUPANCY: { statuses: Status[]; retrySteps: Step[]; attentionPhases: Phase[] } = (() => {
  const statuses = STATUSES.filter((st) => STATE_FACTS.get(st)?.tags.has('occupies_test_system'));
  const heldPhases: Phase[] = ['test', 'test_rollback'];
  return {
    statuses,
    retrySteps: STEPS.filter((step) => heldPhases.includes(STEP_TABLE[step].phase)),
    attentionPhases: heldPhases,
  };
})();

/** Whether an entry in this state holds its test system (no other test may start there). */
export function occupiesTestSystem(value: StateValue, context: PatchContext): boolean {
  const { tags } = factsOf(value);
  if (tags.has('occupies_test_system')) return true;
  if (!tags.has('holds_test_system_in_test_phase')) return false;
  if (statusOf(value) === 'pending_retry')
    return context.retry !== null && TEST_SYSTEM_OCCUPANCY.retrySteps.includes(context.retry.step);
  return context.attention !== null && TEST_SYSTEM_OCCUPANCY.attentionPhases.includes(context.attention.phase);
}

/** A representative event of each operator type, for asking a snapshot whether it would accept it. */
export function probeEvent(type: OperatorEventType, at: number): PatchEvent {
  const base = { at, by: 'probe' };
  switch (type) {
    case 'SNOOZE':
      return { type, ...base, reason: 'probe', until: at + 86_400_000 };
    case 'ROLLBACK':
      return { type, ...base, reason: 'probe', rollbackType: 'package' };
    case 'REJECT':
    case 'ABORT':
    case 'MARK_FAILED':
    case 'FORCE_ROLLBACK':
    case 'ROLLBACK_TEST':
      return { type, ...base, reason: 'probe' };
    default:
      return { type, ...base } as PatchEvent;
  }
}

/** The operator events the current state accepts (used in 409 answers and `GET /queue/{id}`). */
export function acceptedOperatorEvents(snapshot: PatchSnapshot, at: number): OperatorEventType[] {
  return OPERATOR_EVENTS.filter((t) => snapshot.can(probeEvent(t, at)));
}
