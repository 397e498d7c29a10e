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
import { assign, fromPromise, setup, type SnapshotFrom, type StateValue } from 'xstate';

export const MACHINE_VERSION = '1';

export const TARGET_OS = ['ubuntu', 'debian', 'rhel'] as const;
export type TargetOs = (typeof TARGET_OS)[number];

/** Every value of the `status` column, one per top-level state. */
export const STATUSES = [
  'queued', 'testing', 'needs_reboot', 'rebooting', 'pending_retry', 'passed', 'failed', 'pending_approval', 'snoozed',
  'approved', 'rejected', 'promoting', 'prod_pending', 'prod_applied', 'prod_rollback', 'completed', 'rolled_back',
  'removed', 'needs_attention',
] as const;
export type Status = (typeof STATUSES)[number];
export const FINAL_STATUSES: readonly Status[] = ['completed', 'rejected', 'rolled_back', 'removed'];
/** States that exist only once production work has begun: never without a passed test and an approval. */
export const PROD_STATUSES: readonly Status[] = ['approved', 'promoting', 'prod_pending', 'prod_applied', 'prod_rollback', 'completed'];

/** Steps that run an effect; a transient failure in any of them goes to pending_retry and back. */
export const STEPS = [
  'snapshot', 'baseline', 'apply', 'await_action', 'check_reboot', 'validate', 'reboot', 'rollback_test',
  'promote', 'plan_deployment', 'deploy_wave', 'verify_deployment', 'rollback_prod',
] as const;
export type Step = (typeof STEPS)[number];
const TEST_STEPS: readonly Step[] = ['snapshot', 'baseline', 'apply', 'await_action', 'check_reboot', 'validate', 'reboot'];

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
}

export interface PatchInput {
  entryId: number;
  errataId: string;
  targetOs: TargetOs;
  settings: Settings;
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
  rollback: { scope: 'test' | 'prod'; type: RollbackType | null; systems: number[] | null; by: string; reason: string } | null;
  attention: { reason: string; phase: Phase; at: number } | null;
  resolution: string | null;
  lastError: { step: Step; message: string; transient: boolean; at: number } | null;
}

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
  | ({ type: 'APPROVE'; reason?: string } & ByOperator)
  | ({ type: 'REJECT'; reason: string } & ByOperator)
  | ({ type: 'SNOOZE'; reason: string; until: number } & ByOperator)
  | ({ type: 'ROLLBACK_TEST'; reason: string } & ByOperator)
  | ({ type: 'START_DEPLOYMENT' } & ByOperator)
  | ({ type: 'ROLLBACK'; reason: string; rollbackType: RollbackType; systems?: number[] } & ByOperator)
  | ({ type: 'RETRY'; reason?: string } & ByOperator)
  | ({ type: 'MARK_FAILED'; reason: string } & ByOperator)
  | ({ type: 'FORCE_ROLLBACK'; reason: string; rollbackType?: RollbackType; systems?: number[] } & ByOperator)
  | ({ type: 'TIMER'; name: TimerName } & Stamp);

export type OperatorEventType = Exclude<PatchEvent['type'], 'RESUME' | 'TIMER'>;
export const OPERATOR_EVENTS: readonly OperatorEventType[] = [
  'START_TEST', 'REMOVE', 'ABORT', 'APPROVE', 'REJECT', 'SNOOZE', 'ROLLBACK_TEST', 'START_DEPLOYMENT', 'ROLLBACK', 'RETRY', 'MARK_FAILED', 'FORCE_ROLLBACK',
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
  validate: { in: EffectInput; out: Done & { verdict: 'pass' | 'fail' | 'inconclusive'; reason: string | null; evidence: unknown } };
  rollbackTest: { in: EffectInput & { rebootRequired: boolean; snapshotId: string | null; reason: string }; out: Done & { type: RollbackType } };
  notify: { in: EffectInput & { kind: NotifyKind; round: number }; out: Done };
  promote: { in: EffectInput; out: Done & { skipped: boolean } };
  planDeployment: { in: EffectInput & { approvedBy: string | null }; out: Done & { deploymentId: number; waveCount: number; windowOpensAt: number; windowClosesAt: number | null } };
  deployWave: { in: EffectInput & { deploymentId: number; waveIndex: number }; out: Done & { outcome: 'ok' | 'halted' | 'window_closed'; reason: string | null } };
  verifyDeployment: { in: EffectInput & { deploymentId: number }; out: Done & { ok: boolean; reason: string | null } };
  rollbackProduction: { in: EffectInput & { deploymentId: number | null; rollbackType: RollbackType; systems: number[] | null; reason: string }; out: Done };
}
export type EffectName = keyof Effects;

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

function effectInput(context: PatchContext, step: string, attempt: number = context.attempt): EffectInput {
  return {
    key: `${context.entryId}:${attempt}:${step}${context.round > 0 ? `#${context.round}` : ''}`,
    entryId: context.entryId,
    errataId: context.errataId,
    targetOs: context.targetOs,
    attempt,
    testSystem: context.testSystem,
  };
}
const prodKey = (context: PatchContext, step: string) => effectInput(context, step, context.prodAttempt).key.replace(/:(\d+):/, ':p$1:');

function backoffMs(s: Settings, count: number): number {
  return Math.min(s.retryMaxMs, s.retryBaseMs * 2 ** Math.max(0, count - 1));
}

const emptyTest = (): PatchContext['test'] => ({
  snapshotId: null, baselineTaken: false, actionIds: [], applyMessage: null, rebootRequired: null, rebootActionId: null,
  verdict: null, evidence: null, startedAt: null, finishedAt: null,
});

/** Where each step's state lives, for pending_retry → "the step it left". */
const STEP_TARGET: Record<Step, string> = {
  snapshot: '#patch.testing.snapshot',
  baseline: '#patch.testing.baseline',
  apply: '#patch.testing.apply',
  await_action: '#patch.testing.await_action',
  check_reboot: '#patch.testing.check_reboot',
  validate: '#patch.testing.validate',
  reboot: '#patch.needs_reboot',
  rollback_test: '#patch.failed',
  promote: '#patch.promoting',
  plan_deployment: '#patch.prod_pending.planning',
  deploy_wave: '#patch.prod_pending.deploying',
  verify_deployment: '#patch.prod_applied',
  rollback_prod: '#patch.prod_rollback',
};
/** Where a step goes when it fails for good (not transient, or out of retries). */
const STEP_FAILURE_TARGET: Record<Step, string> = {
  snapshot: '#patch.failed', baseline: '#patch.failed', apply: '#patch.failed', await_action: '#patch.failed',
  check_reboot: '#patch.failed', validate: '#patch.needs_attention', reboot: '#patch.failed',
  rollback_test: '#patch.needs_attention', promote: '#patch.needs_attention', plan_deployment: '#patch.needs_attention',
  deploy_wave: '#patch.needs_attention', verify_deployment: '#patch.needs_attention', rollback_prod: '#patch.needs_attention',
};
const STEP_PHASE: Record<Step, Phase> = {
  snapshot: 'test', baseline: 'test', apply: 'test', await_action: 'test', check_reboot: 'test', validate: 'test', reboot: 'test',
  rollback_test: 'test_rollback', promote: 'prod', plan_deployment: 'prod', deploy_wave: 'prod', verify_deployment: 'prod', rollback_prod: 'prod_rollback',
};

/**
 * The two ways a step's effect can fail: transient with retries left → pending_retry (and back to
 * the step when the backoff timer fires); otherwise → the step's failure target, with the reason.
 */
function onStepError(step: Step, failureTarget: string = STEP_FAILURE_TARGET[step]) {
  return [
    { guard: 'retryable' as const, target: '#patch.pending_retry', actions: { type: 'scheduleRetry' as const, params: { step } } },
    { target: failureTarget, actions: { type: 'recordStepError' as const, params: { step } } },
  ];
}

// ---------------------------------------------------------------------------------------------

export const patchMachine = setup({
  types: {
    context: {} as PatchContext,
    events: {} as PatchEvent,
    input: {} as PatchInput,
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
    retryable: ({ context, event }) => {
      const f = failureOf((event as { error?: unknown }).error);
      return f.transient && (context.retry?.count ?? 0) < context.settings.retryMaxAttempts;
    },
    retryStepIs: ({ context }, params: { step: Step }) => context.retry?.step === params.step,
    rebootRequired: ({ event }) => (event as { output?: { required?: boolean } }).output?.required === true,
    actionSucceeded: ({ event }) => (event as { output?: { ok?: boolean } }).output?.ok === true,
    verdictIs: ({ event }, params: { verdict: 'pass' | 'fail' | 'inconclusive' }) =>
      (event as { output?: { verdict?: string } }).output?.verdict === params.verdict,
    /** The approval gate: production work needs a passed test with evidence. */
    testPassed: ({ context }) => context.test.verdict === 'pass' && context.test.evidence != null,
    hasReason: ({ event }) => typeof (event as { reason?: unknown }).reason === 'string' && ((event as { reason: string }).reason.trim().length > 0),
    snoozeInFuture: ({ event }) => event.type === 'SNOOZE' && event.until > event.at && event.reason.trim().length > 0,
    waveOutcomeIs: ({ event }, params: { outcome: 'ok' | 'halted' | 'window_closed' }) =>
      (event as { output?: { outcome?: string } }).output?.outcome === params.outcome,
    moreWaves: ({ context }) => context.prod.waveIndex + 1 < context.prod.waveCount,
    deploymentOk: ({ event }) => (event as { output?: { ok?: boolean } }).output?.ok === true,
    attentionPhaseIs: ({ context }, params: { phases: Phase[] }) => context.attention !== null && params.phases.includes(context.attention.phase),
    inProduction: ({ context }) => context.prod.deploymentId !== null,
  },
  actions: {
    beginTest: assign(({ context, event }) => ({
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
    armStabilize: assign(({ context, event }) => ({ deadlines: { ...context.deadlines, stabilize: eventTime(event) + context.settings.waitAfterPatchMs } })),
    armRebootTimeout: assign(({ context, event }) => ({ deadlines: { ...context.deadlines, reboot_timeout: eventTime(event) + context.settings.rebootTimeoutMs } })),
    armSettle: assign(({ context, event }) => ({ deadlines: { ...context.deadlines, settle: eventTime(event) + context.settings.waitAfterRebootMs } })),
    resetRetry: assign({ retry: null }),
    recordSnapshot: assign(({ context, event }) => ({ test: { ...context.test, snapshotId: (event as unknown as { output: { snapshotId: string } }).output.snapshotId } })),
    recordBaseline: assign(({ context }) => ({ test: { ...context.test, baselineTaken: true } })),
    recordActions: assign(({ context, event }) => ({ test: { ...context.test, actionIds: (event as unknown as { output: { actionIds: number[] } }).output.actionIds } })),
    recordActionResult: assign(({ context, event }) => ({ test: { ...context.test, applyMessage: (event as unknown as { output: { message: string } }).output.message } })),
    recordRebootCheck: assign(({ context, event }) => ({ test: { ...context.test, rebootRequired: (event as unknown as { output: { required: boolean } }).output.required } })),
    recordRebootAction: assign(({ context, event }) => ({ test: { ...context.test, rebootActionId: (event as unknown as { output: { actionId: number } }).output.actionId } })),
    recordVerdict: assign(({ context, event }) => {
      const out = (event as unknown as { output: Effects['validate']['out'] }).output;
      return {
        test: { ...context.test, verdict: out.verdict, evidence: out.evidence ?? null, finishedAt: out.at },
        failure: out.verdict === 'pass' ? null : { reason: out.reason ?? `verdict ${out.verdict}`, at: out.at, step: 'validate' as Step },
        attention: out.verdict === 'inconclusive' ? { reason: out.reason ?? 'no evidence: validation inconclusive', phase: 'test' as Phase, at: out.at } : context.attention,
      };
    }),
    recordFailure: assign((_, params: { reason: string; at: number; step: Step | null }) => ({ failure: params })),
    recordApplyFailure: assign(({ context, event }) => {
      const out = (event as unknown as { output: { message: string; at: number } }).output;
      return { failure: { reason: `apply failed on ${context.testSystem?.name ?? 'test system'}: ${out.message}`, at: out.at, step: 'await_action' as Step } };
    }),
    scheduleRetry: assign(({ context, event }, params: { step: Step }) => {
      const f = failureOf((event as { error?: unknown }).error);
      const count = (context.retry?.step === params.step ? context.retry.count : 0) + 1;
      return {
        retry: { step: params.step, count },
        lastError: { step: params.step, message: f.message, transient: true, at: f.at },
        deadlines: { ...context.deadlines, retry: f.at + backoffMs(context.settings, count) },
      };
    }),
    recordStepError: assign(({ context, event }, params: { step: Step }) => {
      const f = failureOf((event as { error?: unknown }).error);
      const reason = `${params.step} failed${f.transient ? ` after ${context.retry?.count ?? 0} retries` : ''}: ${f.message}`;
      const phase = STEP_PHASE[params.step];
      const toAttention = STEP_FAILURE_TARGET[params.step] === '#patch.needs_attention';
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
    recordAbort: assign(({ event }) => ({
      failure: { reason: `aborted by ${(event as { by?: string }).by ?? 'operator'}: ${(event as { reason?: string }).reason ?? ''}`.trim(), at: eventTime(event), step: null },
    })),
    recordManualTestRollback: assign(({ event }) => ({
      failure: { reason: `manual rollback by ${(event as { by?: string }).by ?? 'operator'}: ${(event as { reason?: string }).reason ?? ''}`.trim(), at: eventTime(event), step: null },
    })),
    recordRebootTimeout: assign(({ context, event }) => ({
      failure: { reason: `host ${context.testSystem?.name ?? ''} did not return within ${Math.round(context.settings.rebootTimeoutMs / 1000)} s after reboot`.replace('  ', ' '), at: eventTime(event), step: 'reboot' as Step },
    })),
    recordApproval: assign(({ event }) => {
      if (event.type === 'APPROVE') return { approval: { action: 'approved' as const, by: event.by, at: event.at, reason: event.reason ?? null } };
      if (event.type === 'REJECT') return { approval: { action: 'rejected' as const, by: event.by, at: event.at, reason: event.reason } };
      if (event.type === 'SNOOZE') return { approval: { action: 'snoozed' as const, by: event.by, at: event.at, reason: event.reason }, snoozeUntil: event.until };
      return {};
    }),
    nextApprovalRound: assign(({ context }) => ({ approvalRound: context.approvalRound + 1 })),
    beginProduction: assign(({ context }) => ({
      prodAttempt: context.prodAttempt + 1,
      prod: { deploymentId: null, waveIndex: 0, waveCount: 0, windowOpensAt: null, windowClosesAt: null, haltReason: null, plans: 0 },
    })),
    recordPlan: assign(({ context, event }) => {
      const out = (event as unknown as { output: Effects['planDeployment']['out'] }).output;
      return {
        prod: { ...context.prod, deploymentId: out.deploymentId, waveCount: out.waveCount, windowOpensAt: out.windowOpensAt, windowClosesAt: out.windowClosesAt, plans: context.prod.plans + 1 },
        deadlines: { ...context.deadlines, window: out.windowOpensAt },
      };
    }),
    nextWave: assign(({ context }) => ({ prod: { ...context.prod, waveIndex: context.prod.waveIndex + 1 } })),
    recordHalt: assign(({ context, event }) => {
      const out = (event as unknown as { output: Effects['deployWave']['out'] }).output;
      const reason = `wave ${context.prod.waveIndex} halted: ${out.reason ?? 'error threshold exceeded'}`;
      return { prod: { ...context.prod, haltReason: reason }, attention: { reason, phase: 'prod' as Phase, at: out.at } };
    }),
    recordVerifyFailure: assign(({ event }) => {
      const out = (event as unknown as { output: Effects['verifyDeployment']['out'] }).output;
      return { rollback: { scope: 'prod' as const, type: 'package' as RollbackType, systems: null, by: 'policy', reason: `post-deployment checks failed: ${out.reason ?? 'unknown'}` } };
    }),
    recordRollbackRequest: assign(({ context, event }) => {
      if (event.type !== 'ROLLBACK' && event.type !== 'FORCE_ROLLBACK') return {};
      const scope = context.prod.deploymentId !== null && (context.attention === null || context.attention.phase === 'prod' || context.attention.phase === 'prod_rollback') ? 'prod' : 'test';
      return {
        rollback: { scope, type: event.rollbackType ?? 'package', systems: event.systems && event.systems.length > 0 ? event.systems : null, by: event.by, reason: event.reason },
      } as Partial<PatchContext>;
    }),
    recordRetry: assign(({ context }) => ({ attention: null, lastError: null, retry: null, resolution: null, round: context.round + 1, deadlines: { ...context.deadlines } })),
    recordManualFailure: assign(({ event }) => ({
      resolution: `marked failed by ${(event as { by?: string }).by ?? 'operator'}: ${(event as { reason?: string }).reason ?? ''}`.trim(),
    })),
    recordRemoval: assign(({ event }) => ({ resolution: `removed by ${(event as { by?: string }).by ?? 'operator'}${(event as { reason?: string }).reason ? `: ${(event as { reason?: string }).reason}` : ''}` })),
    recordRollbackDone: assign(({ context, event }) => {
      const out = (event as unknown as { output: { type?: RollbackType } }).output;
      return { rollback: { scope: context.rollback?.scope ?? 'test', type: out.type ?? context.rollback?.type ?? null, systems: context.rollback?.systems ?? null, by: context.rollback?.by ?? 'policy', reason: context.rollback?.reason ?? context.failure?.reason ?? '' } };
    }),
    recordTestRollbackStart: assign(({ context }) => ({
      rollback: context.rollback?.scope === 'test' ? context.rollback : { scope: 'test' as const, type: null, systems: null, by: 'policy', reason: context.failure?.reason ?? 'test failed' },
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
    prod: { deploymentId: null, waveIndex: 0, waveCount: 0, windowOpensAt: null, windowClosesAt: null, haltReason: null, plans: 0 },
    rollback: null,
    attention: null,
    resolution: null,
    lastError: null,
  }),
  // RESUME is sent after every hydration. Timers live in the `timers` table (derived from state and
  // context), so nothing needs re-arming in memory: RESUME is accepted everywhere and changes nothing.
  on: { RESUME: {} },
  states: {
    queued: {
      on: {
        START_TEST: { target: 'testing', actions: 'beginTest' },
        REMOVE: { target: 'removed', actions: 'recordRemoval' },
      },
    },

    testing: {
      initial: 'snapshot',
      on: {
        ABORT: { target: 'failed', actions: 'recordAbort' },
        TIMER: { guard: { type: 'isTimer', params: { name: 'step_timeout' } }, target: 'failed', actions: 'recordTimeout' },
      },
      states: {
        snapshot: {
          entry: 'armStepTimeout',
          invoke: {
            id: 'takeSnapshot',
            src: 'takeSnapshot',
            input: ({ context }) => effectInput(context, 'snapshot'),
            onDone: { target: 'baseline', actions: ['recordSnapshot', 'resetRetry'] },
            onError: onStepError('snapshot', '#patch.failed'),
          },
        },
        baseline: {
          entry: 'armStepTimeout',
          invoke: {
            id: 'collectBaseline',
            src: 'collectBaseline',
            input: ({ context }) => effectInput(context, 'baseline'),
            onDone: { target: 'apply', actions: ['recordBaseline', 'resetRetry'] },
            onError: onStepError('baseline', '#patch.failed'),
          },
        },
        apply: {
          entry: 'armStepTimeout',
          invoke: {
            id: 'applyErrata',
            src: 'applyErrata',
            input: ({ context }) => effectInput(context, 'apply'),
            onDone: { target: 'await_action', actions: ['recordActions', 'resetRetry'] },
            onError: onStepError('apply', '#patch.failed'),
          },
        },
        await_action: {
          entry: 'armStepTimeout',
          invoke: {
            id: 'awaitAction',
            src: 'awaitAction',
            input: ({ context }) => ({ ...effectInput(context, 'await_action'), actionIds: context.test.actionIds }),
            onDone: [
              { guard: 'actionSucceeded', target: 'stabilize', actions: ['recordActionResult', 'resetRetry'] },
              { target: '#patch.failed', actions: ['recordActionResult', 'recordApplyFailure'] },
            ],
            onError: onStepError('await_action', '#patch.failed'),
          },
        },
        stabilize: {
          entry: ['clearStepTimeout', 'armStabilize'],
          on: { TIMER: { guard: { type: 'isTimer', params: { name: 'stabilize' } }, target: 'check_reboot' } },
        },
        check_reboot: {
          entry: 'armStepTimeout',
          invoke: {
            id: 'checkReboot',
            src: 'checkReboot',
            input: ({ context }) => effectInput(context, 'check_reboot'),
            onDone: [
              { guard: 'rebootRequired', target: '#patch.needs_reboot', actions: ['recordRebootCheck', 'resetRetry'] },
              { target: 'validate', actions: ['recordRebootCheck', 'resetRetry'] },
            ],
            onError: onStepError('check_reboot', '#patch.failed'),
          },
        },
        validate: {
          entry: 'armStepTimeout',
          invoke: {
            id: 'validate',
            src: 'validate',
            input: ({ context }) => effectInput(context, 'validate'),
            onDone: [
              { guard: { type: 'verdictIs', params: { verdict: 'pass' } }, target: '#patch.passed', actions: ['recordVerdict', 'resetRetry'] },
              { guard: { type: 'verdictIs', params: { verdict: 'fail' } }, target: '#patch.failed', actions: ['recordVerdict', 'resetRetry'] },
              // Inconclusive (no evidence): never a pass; a human decides.
              { target: '#patch.needs_attention', actions: ['recordVerdict', 'resetRetry'] },
            ],
            onError: onStepError('validate', '#patch.needs_attention'),
          },
        },
      },
    },

    needs_reboot: {
      entry: 'armStepTimeout',
      on: {
        ABORT: { target: 'failed', actions: 'recordAbort' },
        TIMER: { guard: { type: 'isTimer', params: { name: 'step_timeout' } }, target: 'failed', actions: 'recordTimeout' },
      },
      invoke: {
        id: 'scheduleReboot',
        src: 'scheduleReboot',
        input: ({ context }) => effectInput(context, 'reboot'),
        onDone: { target: 'rebooting', actions: ['recordRebootAction', 'resetRetry'] },
        onError: onStepError('reboot', '#patch.failed'),
      },
    },

    rebooting: {
      initial: 'awaiting_host',
      entry: ['clearStepTimeout', 'armRebootTimeout'],
      on: { ABORT: { target: 'failed', actions: 'recordAbort' } },
      states: {
        awaiting_host: {
          on: { TIMER: { guard: { type: 'isTimer', params: { name: 'reboot_timeout' } }, target: '#patch.failed', actions: 'recordRebootTimeout' } },
          invoke: {
            id: 'awaitHost',
            src: 'awaitHost',
            input: ({ context }) => ({ ...effectInput(context, 'await_host'), rebootActionId: context.test.rebootActionId }),
            onDone: { target: 'settling' },
            // awaitHost keeps polling through transient errors; only a permanent error lands here.
            onError: { target: '#patch.failed', actions: { type: 'recordStepError', params: { step: 'reboot' } } },
          },
        },
        settling: {
          entry: 'armSettle',
          on: { TIMER: { guard: { type: 'isTimer', params: { name: 'settle' } }, target: '#patch.testing.validate' } },
        },
      },
    },

    pending_retry: {
      on: {
        TIMER: STEPS.map((step) => ({
          guard: ({ context, event }: { context: PatchContext; event: PatchEvent }) => event.type === 'TIMER' && event.name === 'retry' && context.retry?.step === step,
          target: STEP_TARGET[step],
        })),
        ABORT: { guard: ({ context }) => context.retry !== null && TEST_STEPS.includes(context.retry.step), target: 'failed', actions: 'recordAbort' },
      },
    },

    passed: {
      entry: 'nextApprovalRound',
      invoke: {
        id: 'notifyPendingApproval',
        src: 'notify',
        input: ({ context }) => ({ ...effectInput(context, `notify_pending_approval_${context.approvalRound}`), kind: 'pending_approval' as const, round: context.approvalRound }),
        // A notification problem never blocks the approval gate: the notifier retries on its own.
        onDone: { target: 'pending_approval' },
        onError: { target: 'pending_approval' },
      },
    },

    failed: {
      entry: ['recordTestRollbackStart', 'armStepTimeout'],
      on: { TIMER: { guard: { type: 'isTimer', params: { name: 'step_timeout' } }, target: 'needs_attention', actions: assign(({ event }) => ({ attention: { reason: 'test-system rollback timed out', phase: 'test_rollback' as Phase, at: eventTime(event) } })) } },
      invoke: {
        id: 'rollbackTest',
        src: 'rollbackTest',
        input: ({ context }) => ({
          ...effectInput(context, 'rollback_test'),
          rebootRequired: context.test.rebootRequired === true,
          snapshotId: context.test.snapshotId,
          reason: context.failure?.reason ?? 'test failed',
        }),
        onDone: { target: 'rolled_back', actions: ['recordRollbackDone', 'clearStepTimeout'] },
        onError: onStepError('rollback_test', '#patch.needs_attention'),
      },
    },

    pending_approval: {
      on: {
        APPROVE: { guard: 'testPassed', target: 'approved', actions: 'recordApproval' },
        REJECT: { guard: 'hasReason', target: 'rejected', actions: 'recordApproval' },
        SNOOZE: { guard: 'snoozeInFuture', target: 'snoozed', actions: 'recordApproval' },
        ROLLBACK_TEST: { guard: 'hasReason', target: 'failed', actions: 'recordManualTestRollback' },
      },
    },

    snoozed: {
      on: {
        TIMER: { guard: { type: 'isTimer', params: { name: 'snooze' } }, target: 'passed' },
        APPROVE: { guard: 'testPassed', target: 'approved', actions: 'recordApproval' },
        REJECT: { guard: 'hasReason', target: 'rejected', actions: 'recordApproval' },
      },
    },

    approved: {
      invoke: {
        id: 'notifyApproved',
        src: 'notify',
        input: ({ context }) => ({ ...effectInput(context, 'notify_approved'), kind: 'approved' as const, round: context.approvalRound }),
        onDone: { target: 'promoting', actions: 'beginProduction' },
        onError: { target: 'promoting', actions: 'beginProduction' },
      },
    },

    promoting: {
      entry: 'armStepTimeout',
      on: { TIMER: { guard: { type: 'isTimer', params: { name: 'step_timeout' } }, target: 'needs_attention', actions: assign(({ event }) => ({ attention: { reason: 'CLM promotion timed out', phase: 'prod' as Phase, at: eventTime(event) } })) } },
      invoke: {
        id: 'promote',
        src: 'promote',
        input: ({ context }) => ({ ...effectInput(context, 'promote'), key: prodKey(context, 'promote') }),
        onDone: { target: 'prod_pending', actions: ['resetRetry', 'clearStepTimeout'] },
        onError: onStepError('promote', '#patch.needs_attention'),
      },
    },

    prod_pending: {
      initial: 'planning',
      states: {
        planning: {
          invoke: {
            id: 'planDeployment',
            src: 'planDeployment',
            input: ({ context }) => ({ ...effectInput(context, 'plan_deployment'), key: prodKey(context, `plan_deployment_${context.prod.plans}`), approvedBy: context.approval?.by ?? null }),
            onDone: { target: 'awaiting_window', actions: ['recordPlan', 'resetRetry'] },
            onError: onStepError('plan_deployment', '#patch.needs_attention'),
          },
        },
        awaiting_window: {
          on: {
            TIMER: { guard: { type: 'isTimer', params: { name: 'window' } }, target: 'deploying' },
            START_DEPLOYMENT: { target: 'deploying' },
          },
        },
        deploying: {
          invoke: {
            id: 'deployWave',
            src: 'deployWave',
            input: ({ context }) => ({
              ...effectInput(context, 'deploy_wave'),
              key: prodKey(context, `deploy_wave_${context.prod.waveIndex}_plan${context.prod.plans}`),
              deploymentId: context.prod.deploymentId ?? 0,
              waveIndex: context.prod.waveIndex,
            }),
            onDone: [
              { guard: { type: 'waveOutcomeIs', params: { outcome: 'halted' } }, target: '#patch.needs_attention', actions: 'recordHalt' },
              // The window closed between waves: plan the rest for the next window.
              { guard: { type: 'waveOutcomeIs', params: { outcome: 'window_closed' } }, target: 'planning' },
              { guard: 'moreWaves', target: 'deploying', reenter: true, actions: ['nextWave', 'resetRetry'] },
              { target: '#patch.prod_applied', actions: 'resetRetry' },
            ],
            onError: onStepError('deploy_wave', '#patch.needs_attention'),
          },
        },
      },
    },

    prod_applied: {
      on: { ROLLBACK: { guard: 'hasReason', target: 'prod_rollback', actions: 'recordRollbackRequest' } },
      invoke: {
        id: 'verifyDeployment',
        src: 'verifyDeployment',
        input: ({ context }) => ({ ...effectInput(context, 'verify_deployment'), key: prodKey(context, 'verify_deployment'), deploymentId: context.prod.deploymentId ?? 0 }),
        onDone: [
          { guard: 'deploymentOk', target: 'completed', actions: 'resetRetry' },
          { target: 'prod_rollback', actions: 'recordVerifyFailure' },
        ],
        onError: onStepError('verify_deployment', '#patch.needs_attention'),
      },
    },

    prod_rollback: {
      invoke: {
        id: 'rollbackProduction',
        src: 'rollbackProduction',
        input: ({ context }) => ({
          ...effectInput(context, 'rollback_prod'),
          key: prodKey(context, 'rollback_prod'),
          deploymentId: context.prod.deploymentId,
          rollbackType: context.rollback?.type ?? 'package',
          systems: context.rollback?.systems ?? null,
          reason: context.rollback?.reason ?? 'rollback',
        }),
        onDone: { target: 'rolled_back', actions: ['recordRollbackDone', 'resetRetry'] },
        onError: onStepError('rollback_prod', '#patch.needs_attention'),
      },
    },

    needs_attention: {
      on: {
        RETRY: [
          { guard: { type: 'attentionPhaseIs', params: { phases: ['test'] } }, target: 'testing', actions: ['beginTest'] },
          { guard: { type: 'attentionPhaseIs', params: { phases: ['test_rollback'] } }, target: 'failed', actions: 'recordRetry' },
          { guard: { type: 'attentionPhaseIs', params: { phases: ['prod'] } }, target: 'prod_pending', actions: 'recordRetry' },
          { guard: { type: 'attentionPhaseIs', params: { phases: ['prod_rollback'] } }, target: 'prod_rollback', actions: 'recordRetry' },
        ],
        MARK_FAILED: { guard: 'hasReason', target: 'rolled_back', actions: 'recordManualFailure' },
        FORCE_ROLLBACK: [
          { guard: { type: 'attentionPhaseIs', params: { phases: ['prod', 'prod_rollback'] } }, target: 'prod_rollback', actions: ['recordRollbackRequest', 'recordRetry'] },
          { target: 'failed', actions: ['recordRollbackRequest', 'recordRetry'] },
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
  if (top === undefined || !(STATUSES as readonly string[]).includes(top)) throw new Error(`state value ${JSON.stringify(value)} is not a patch status`);
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

/**
 * The durable timers a snapshot needs: which deadline the scheduler must fire for this state.
 * The host writes them to the `timers` table in the same transaction as the snapshot.
 */
export function timersFor(value: StateValue, context: PatchContext): DurableTimer[] {
  const label = stateLabel(value);
  const d = context.deadlines;
  const at = (name: TimerName, fireAt: number | undefined | null): DurableTimer[] => (typeof fireAt === 'number' ? [{ name, fireAt }] : []);
  switch (label) {
    case 'testing.snapshot':
    case 'testing.baseline':
    case 'testing.apply':
    case 'testing.await_action':
    case 'testing.check_reboot':
    case 'testing.validate':
    case 'needs_reboot':
    case 'failed':
    case 'promoting':
      return at('step_timeout', d.step_timeout);
    case 'testing.stabilize':
      return at('stabilize', d.stabilize);
    case 'rebooting.awaiting_host':
      return at('reboot_timeout', d.reboot_timeout);
    case 'rebooting.settling':
      return at('settle', d.settle);
    case 'pending_retry':
      return at('retry', d.retry);
    case 'snoozed':
      return at('snooze', context.snoozeUntil);
    case 'prod_pending.awaiting_window':
      return at('window', d.window);
    default:
      return [];
  }
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
