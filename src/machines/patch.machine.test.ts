/**
 * The machine alone, without a database: stub actors stand in for the effects. Every step's
 * permanent failure lands where the step table says; the timers each state arms; the operator
 * events each state accepts; which states hold the test system.
 */
import { createActor, fromPromise, waitFor, type StateValue } from 'xstate';
import { describe, expect, it } from 'vitest';
import {
  acceptedOperatorEvents,
  approvalRefusal,
  approvalsMissing,
  approvedGroups,
  DEFAULT_APPROVAL_MAX_AGE_MS,
  occupiesTestSystem,
  patchMachine,
  STEPS,
  stateLabel,
  stepFailureTarget,
  TEST_SYSTEM_OCCUPANCY,
  timersFor,
  type EffectName,
  type PatchContext,
  type PatchEvent,
  type Settings,
  type Step,
} from './patch.machine.ts';

const AT = 1_700_000_000_000;
const SETTINGS: Settings = {
  waitAfterPatchMs: 1000,
  waitAfterRebootMs: 1000,
  rebootTimeoutMs: 1000,
  stepTimeoutMs: 1000,
  retryBaseMs: 1000,
  retryMaxMs: 1000,
  retryMaxAttempts: 2,
};
const INPUT = { entryId: 7, errataId: 'USN-1', targetOs: 'ubuntu' as const, settings: SETTINGS };

const STEP_EFFECT: Record<Step, EffectName> = {
  snapshot: 'takeSnapshot',
  baseline: 'collectBaseline',
  apply: 'applyErrata',
  await_action: 'awaitAction',
  check_reboot: 'checkReboot',
  validate: 'validate',
  reboot: 'scheduleReboot',
  rollback_test: 'rollbackTest',
  promote: 'promote',
  plan_deployment: 'planDeployment',
  deploy_wave: 'deployWave',
  verify_deployment: 'verifyDeployment',
  rollback_prod: 'rollbackProduction',
};

/** Outputs that walk the happy path; the failing step's effect rejects for good; `given` replaces some. */
function stubs(failing: Step | null, given: Partial<Record<EffectName, (input: any) => unknown>> = {}) {
  const out: Record<EffectName, (input: any) => unknown> = {
    takeSnapshot: () => ({ snapshotId: 's1', at: AT }),
    collectBaseline: () => ({ at: AT }),
    applyErrata: () => ({ actionIds: [1], at: AT }),
    awaitAction: () => ({ ok: true, message: 'Completed', at: AT }),
    // A reboot only for the reboot step, so that every other step is reached without one.
    checkReboot: () => ({ required: failing === 'reboot', at: AT }),
    scheduleReboot: () => ({ actionId: 2, at: AT }),
    awaitHost: () => ({ at: AT }),
    // The test fails when the rollback of the test is the step under test.
    validate: () => ({
      verdict: failing === 'rollback_test' ? 'fail' : 'pass',
      reason: null,
      evidence: { checks: [] },
      at: AT,
    }),
    rollbackTest: () => new Promise(() => undefined), // never ends: `failed` stays observable
    notify: () => ({ at: AT }),
    promote: () => ({ skipped: true, at: AT }),
    planDeployment: () => ({ deploymentId: 1, waveCount: 1, windowOpensAt: AT + 1e9, windowClosesAt: null, at: AT }),
    deployWave: () => ({ outcome: 'ok', reason: null, at: AT }),
    verifyDeployment: () => ({ ok: failing !== 'rollback_prod', reason: 'checks failed', at: AT }),
    rollbackProduction: () => new Promise(() => undefined),
    ...given,
  };
  const actors: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(out)) {
    actors[name] = fromPromise(async ({ input }) => {
      if (failing !== null && name === STEP_EFFECT[failing])
        throw Object.assign(new Error('broken'), { transient: false, at: AT });
      return fn(input);
    });
  }
  return patchMachine.provide({ actors: actors as never });
}

const byOperator = { at: AT, by: 'alice' };
/** Operator and timer events that move the happy path on where effects alone do not. */
function nudge(value: StateValue): PatchEvent | null {
  const label = stateLabel(value);
  if (label === 'queued') return { type: 'START_TEST', ...byOperator, testSystem: { id: 1, name: 'test-1' } };
  if (label === 'testing.stabilize') return { type: 'TIMER', at: AT, name: 'stabilize' };
  if (label === 'rebooting.settling') return { type: 'TIMER', at: AT, name: 'settle' };
  if (label === 'pending_approval') return { type: 'APPROVE', ...byOperator };
  if (label === 'prod_pending.awaiting_window') return { type: 'START_DEPLOYMENT', ...byOperator };
  return null;
}

describe('patch machine (no database)', () => {
  it.each(STEPS.map((s) => [s]))('a permanent failure of %s goes where the step table says', async (step) => {
    const actor = createActor(stubs(step), { input: INPUT }).start();
    const target = stepFailureTarget(step).replace('#patch.', '');
    for (let i = 0; i < 30 && !actor.getSnapshot().matches(target as never); i++) {
      const ev = nudge(actor.getSnapshot().value);
      if (ev) actor.send(ev);
      await new Promise((r) => setTimeout(r, 0));
    }
    await waitFor(actor, (s) => s.matches(target as never), { timeout: 1000 });
    const ctx = actor.getSnapshot().context;
    expect(ctx.lastError?.step).toBe(step);
    actor.stop();
  });

  it('timersFor: each state arms exactly the timer its meta names, at the deadline in context', () => {
    const deadlines = { step_timeout: 1, stabilize: 2, reboot_timeout: 3, settle: 4, retry: 5, window: 6 };
    const ctx = {
      ...createActor(patchMachine, { input: INPUT }).getSnapshot().context,
      deadlines,
      snoozeUntil: 7,
    } as PatchContext;
    const expected: Record<string, string | null> = {
      queued: null,
      'testing.snapshot': 'step_timeout',
      'testing.baseline': 'step_timeout',
      'testing.apply': 'step_timeout',
      'testing.await_action': 'step_timeout',
      'testing.stabilize': 'stabilize',
      'testing.check_reboot': 'step_timeout',
      'testing.validate': 'step_timeout',
      needs_reboot: 'step_timeout',
      'rebooting.awaiting_host': 'reboot_timeout',
      'rebooting.settling': 'settle',
      pending_retry: 'retry',
      passed: null,
      failed: 'step_timeout',
      pending_approval: null,
      snoozed: 'snooze',
      approved: null,
      promoting: 'step_timeout',
      'prod_pending.planning': null,
      'prod_pending.awaiting_window': 'window',
      'prod_pending.deploying': null,
      prod_applied: null,
      prod_rollback: null,
      needs_attention: null,
      completed: null,
      rejected: null,
      rolled_back: null,
      removed: null,
    };
    const at: Record<string, number> = { ...deadlines, snooze: 7 };
    for (const [label, timer] of Object.entries(expected)) {
      const [top, sub] = label.split('.') as [string, string | undefined];
      const value: StateValue = sub ? { [top]: sub } : top;
      expect(timersFor(value, ctx), label).toEqual(timer ? [{ name: timer, fireAt: at[timer] }] : []);
      // No deadline in context: nothing is armed.
      expect(timersFor(value, { ...ctx, deadlines: {}, snoozeUntil: null }), label).toEqual([]);
    }
  });

  it('accepts the operator events of each state, and no others', () => {
    const base = createActor(patchMachine, { input: INPUT }).getSnapshot().context;
    const passed = { ...base, test: { ...base.test, verdict: 'pass' as const, evidence: { checks: [] } } };
    const accepted = (value: StateValue, context: PatchContext = base) =>
      acceptedOperatorEvents(patchMachine.resolveState({ value, context }), AT).sort();
    expect(accepted('queued')).toEqual(['REMOVE', 'START_TEST']);
    expect(accepted({ testing: 'apply' })).toEqual(['ABORT']);
    expect(accepted('pending_approval', passed)).toEqual(['APPROVE', 'REJECT', 'ROLLBACK_TEST', 'SNOOZE']);
    // The gate: no approval without a passed test with evidence.
    expect(accepted('pending_approval')).toEqual(['REJECT', 'ROLLBACK_TEST', 'SNOOZE']);
    expect(accepted('snoozed', passed)).toEqual(['APPROVE', 'REJECT']);
    expect(accepted({ prod_pending: 'awaiting_window' })).toEqual(['START_DEPLOYMENT']);
    expect(accepted('prod_applied')).toEqual(['ROLLBACK']);
    const attention = { ...base, attention: { reason: 'x', phase: 'prod' as const, at: AT } };
    expect(accepted('needs_attention', attention)).toEqual(['FORCE_ROLLBACK', 'MARK_FAILED', 'RETRY']);
    expect(accepted('completed')).toEqual([]);
  });

  it('the occupancy the lanes query is the one the machine states (same lists as before)', () => {
    expect(TEST_SYSTEM_OCCUPANCY).toEqual({
      statuses: ['testing', 'needs_reboot', 'rebooting', 'failed'],
      retrySteps: [
        'snapshot',
        'baseline',
        'apply',
        'await_action',
        'check_reboot',
        'validate',
        'reboot',
        'rollback_test',
      ],
      attentionPhases: ['test', 'test_rollback'],
    });
  });

  it('occupiesTestSystem: the test, its reboot and its rollback hold the system; waits hold it only for test steps', () => {
    const base = createActor(patchMachine, { input: INPUT }).getSnapshot().context;
    expect(occupiesTestSystem({ testing: 'validate' }, base)).toBe(true);
    expect(occupiesTestSystem('needs_reboot', base)).toBe(true);
    expect(occupiesTestSystem({ rebooting: 'settling' }, base)).toBe(true);
    expect(occupiesTestSystem('failed', base)).toBe(true);
    expect(occupiesTestSystem('queued', base)).toBe(false);
    expect(occupiesTestSystem('pending_approval', base)).toBe(false);
    for (const step of STEPS) {
      const ctx = { ...base, retry: { step, count: 1 } };
      const testStep = !['promote', 'plan_deployment', 'deploy_wave', 'verify_deployment', 'rollback_prod'].includes(
        step,
      );
      expect(occupiesTestSystem('pending_retry', ctx), step).toBe(testStep);
    }
    for (const phase of ['test', 'test_rollback', 'prod', 'prod_rollback'] as const) {
      const ctx = { ...base, attention: { reason: 'x', phase, at: AT } };
      expect(occupiesTestSystem('needs_attention', ctx), phase).toBe(phase === 'test' || phase === 'test_rollback');
    }
  });
});

describe('the approval gate (issue 12)', () => {
  async function toPendingApproval(input: Record<string, unknown>, given: Parameters<typeof stubs>[1] = {}) {
    const actor = createActor(stubs(null, given), { input: { ...INPUT, ...input } }).start();
    actor.send({ type: 'START_TEST', at: AT, by: 'bob', testSystem: { id: 1, name: 'test-1' } });
    for (let i = 0; i < 30 && !actor.getSnapshot().matches('pending_approval'); i++) {
      const ev = nudge(actor.getSnapshot().value);
      if (ev && ev.type !== 'START_TEST') actor.send(ev);
      await new Promise((r) => setTimeout(r, 0));
    }
    await waitFor(actor, (s) => s.matches('pending_approval'), { timeout: 1000 });
    return actor;
  }
  const approve = (by: string, at = AT): PatchEvent => ({ type: 'APPROVE', at, by, reason: 'ok' });

  it('separation of duties: who queued or tested it may not approve it; someone else may', async () => {
    const actor = await toPendingApproval({ queuedBy: 'alice', separationOfDuties: true });
    const ctx = actor.getSnapshot().context;
    expect(approvalRefusal(ctx, 'alice')).toBe('self_approval');
    expect(approvalRefusal(ctx, 'bob')).toBe('self_approval');
    expect(actor.getSnapshot().can(approve('alice'))).toBe(false);
    expect(actor.getSnapshot().can(approve('bob'))).toBe(false);
    actor.send(approve('carol'));
    expect(actor.getSnapshot().matches('pending_approval')).toBe(false);
    expect(actor.getSnapshot().context.approval?.by).toBe('carol');
    actor.stop();
  });

  it('without the policy, the tester may approve (as before)', async () => {
    const actor = await toPendingApproval({ queuedBy: 'alice' });
    expect(actor.getSnapshot().can(approve('bob'))).toBe(true);
    actor.stop();
  });

  it('two distinct approvers when the policy asks for two: the first is recorded, the gate opens on the second', async () => {
    const actor = await toPendingApproval({ requiredApprovals: 2 });
    actor.send(approve('carol'));
    expect(actor.getSnapshot().matches('pending_approval')).toBe(true);
    expect(actor.getSnapshot().context.approvals?.map((a) => a.by)).toEqual(['carol']);
    expect(approvalsMissing(actor.getSnapshot().context)).toBe(1);
    expect(actor.getSnapshot().can(approve('carol'))).toBe(false); // not twice
    actor.send(approve('dave'));
    expect(actor.getSnapshot().matches('pending_approval')).toBe(false);
    actor.stop();
  });

  it('an errata that changed after its approval voids it: back to the approvers, notified', async () => {
    const actor = await toPendingApproval({});
    actor.send(approve('carol'));
    // Wait in the window: then the errata changes.
    await waitFor(actor, (s) => s.matches({ prod_pending: 'awaiting_window' }), { timeout: 1000 });
    actor.send({ type: 'ERRATA_CHANGED', at: AT + 10, by: 'sync', reason: 'errata version 2 → 3' });
    await waitFor(actor, (s) => s.matches('pending_approval'), { timeout: 1000 });
    const ctx = actor.getSnapshot().context;
    expect(ctx.approval).toBeNull();
    expect(ctx.approvalVoided).toEqual({ reason: 'errata version 2 → 3', at: AT + 10 });
    expect(ctx.approvalRound).toBe(2); // the approvers were notified again
    actor.stop();
  });

  it('approvedGroups: the groups every approval of the round covers; unbound (null) when one predates binding', () => {
    const ctx = createActor(patchMachine, { input: INPUT }).getSnapshot().context;
    const a = (groups?: string[]) => ({ by: 'x', at: AT, reason: null, ...(groups ? { groups } : {}) });
    expect(approvedGroups({ ...ctx, approvals: [] })).toBeNull();
    expect(approvedGroups({ ...ctx, approvals: [a(['prod-web', 'prod-db'])] })).toEqual(['prod-db', 'prod-web']);
    expect(approvedGroups({ ...ctx, approvals: [a(['prod-web', 'prod-db']), a(['prod-web'])] })).toEqual(['prod-web']);
    expect(approvedGroups({ ...ctx, approvals: [a(['prod-web']), a()] })).toBeNull();
    expect(approvedGroups({ ...ctx, approvals: [a([])] })).toEqual([]);
  });

  it('the plan is made under the approved groups; a group added since voids the approval before any wave', async () => {
    const seen: unknown[] = [];
    const actor = await toPendingApproval(
      { requiredApprovals: 2 },
      {
        planDeployment: (input) => {
          seen.push(input.approvedGroups);
          return { scopeChanged: 'the errata now also targets production group prod-db', at: AT + 5 };
        },
      },
    );
    actor.send({ ...approve('carol'), groups: ['prod-web', 'prod-db'] } as PatchEvent);
    actor.send({ ...approve('dave'), groups: ['prod-web'] } as PatchEvent);
    await waitFor(actor, (s) => s.context.approvalVoided != null, { timeout: 1000 });
    await waitFor(actor, (s) => s.matches('pending_approval'), { timeout: 1000 });
    // The plan was asked with what both approvals cover, and nothing was deployed.
    expect(seen).toEqual([['prod-web']]);
    const ctx = actor.getSnapshot().context;
    expect(ctx.approval).toBeNull();
    expect(ctx.approvals).toEqual([]);
    expect(ctx.prod.deploymentId).toBeNull();
    expect(ctx.approvalVoided).toEqual({ reason: 'the errata now also targets production group prod-db', at: AT + 5 });
    expect(ctx.approvalRound).toBe(2); // the approvers were notified again
    actor.stop();
  });

  it('an approval older than the maximum age does not start production', async () => {
    const actor = await toPendingApproval({});
    actor.send(approve('carol'));
    await waitFor(actor, (s) => s.matches({ prod_pending: 'awaiting_window' }), { timeout: 1000 });
    const late = AT + DEFAULT_APPROVAL_MAX_AGE_MS + 1;
    actor.send({ type: 'TIMER', at: late, name: 'window' });
    await waitFor(actor, (s) => s.matches('pending_approval'), { timeout: 1000 });
    expect(actor.getSnapshot().context.approvalVoided?.reason).toMatch(/^approval expired/);
    actor.stop();
  });
});
