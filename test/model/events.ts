/**
 * The event alphabet for model-based paths: in every state, the operator events with valid
 * payloads, the timers that state arms, and every outcome of every active invoke (done with each
 * output variant, transient error, permanent error).
 */
import type { AnyMachineSnapshot } from 'xstate';
import { timersFor, type PatchContext, type PatchEvent } from '../../src/machines/patch.machine.ts';

export const AT = 1_700_000_000_000;
const by = 'model';

/** Sample outputs of every effect, the first of each the successful one. */
export const OUTPUTS: Record<string, unknown[]> = {
  takeSnapshot: [{ snapshotId: 'snap-1', at: AT }],
  collectBaseline: [{ at: AT }],
  applyErrata: [{ actionIds: [11], at: AT }],
  awaitAction: [
    { ok: true, message: 'Completed', at: AT },
    { ok: false, message: 'Failed', at: AT },
  ],
  checkReboot: [
    { required: false, at: AT },
    { required: true, at: AT },
  ],
  scheduleReboot: [{ actionId: 12, at: AT }],
  awaitHost: [{ at: AT }],
  validate: [
    { verdict: 'pass', reason: null, evidence: { checks: [] }, at: AT },
    { verdict: 'fail', reason: 'service down', evidence: { checks: [] }, at: AT },
    { verdict: 'inconclusive', reason: 'no evidence', evidence: null, at: AT },
  ],
  rollbackTest: [{ type: 'package', at: AT }],
  notify: [{ at: AT }],
  promote: [{ skipped: true, at: AT }],
  planDeployment: [
    { deploymentId: 5, waveCount: 2, windowOpensAt: 4_000_000_000_000, windowClosesAt: null, at: AT },
    { scopeChanged: 'the errata now also targets production group prod-db', at: AT },
  ],
  deployWave: [
    { outcome: 'ok', reason: null, at: AT },
    { outcome: 'halted', reason: 'threshold', at: AT },
    { outcome: 'window_closed', reason: null, at: AT },
  ],
  verifyDeployment: [
    { ok: true, reason: null, at: AT },
    { ok: false, reason: 'checks failed', at: AT },
  ],
  rollbackProduction: [{ at: AT }],
};

export interface InvokeInfo {
  id: string;
  src: string;
}

export function activeInvokes(snapshot: AnyMachineSnapshot): InvokeInfo[] {
  const nodes = (snapshot as unknown as { _nodes: { invoke: { id: string; src: string | object }[] }[] })._nodes;
  return nodes.flatMap((n) => n.invoke.map((i) => ({ id: i.id, src: typeof i.src === 'string' ? i.src : i.id })));
}

export function modelEvents(snapshot: AnyMachineSnapshot): PatchEvent[] {
  const ctx = snapshot.context as PatchContext;
  const events: unknown[] = [
    { type: 'START_TEST', at: AT, by, testSystem: { id: 1, name: 'test-ubuntu-01' } },
    { type: 'REMOVE', at: AT, by },
    { type: 'ABORT', at: AT, by, reason: 'abort' },
    { type: 'APPROVE', at: AT, by, reason: 'ok', groups: ['prod-web'] },
    { type: 'REJECT', at: AT, by, reason: 'no' },
    { type: 'SNOOZE', at: AT, by, reason: 'later', until: AT + 86_400_000 },
    { type: 'ROLLBACK_TEST', at: AT, by, reason: 'manual' },
    { type: 'START_DEPLOYMENT', at: AT, by },
    { type: 'ROLLBACK', at: AT, by, reason: 'bad', rollbackType: 'package' },
    { type: 'RETRY', at: AT, by },
    { type: 'MARK_FAILED', at: AT, by, reason: 'give up' },
    { type: 'FORCE_ROLLBACK', at: AT, by, reason: 'force', rollbackType: 'system' },
    ...timersFor(snapshot.value, ctx).map((t) => ({ type: 'TIMER', at: AT, name: t.name })),
  ];
  for (const inv of activeInvokes(snapshot)) {
    for (const output of OUTPUTS[inv.src] ?? []) events.push({ type: `xstate.done.actor.${inv.id}`, output });
    events.push({ type: `xstate.error.actor.${inv.id}`, error: { message: 'unreachable', transient: true, at: AT } });
    events.push({ type: `xstate.error.actor.${inv.id}`, error: { message: 'broken', transient: false, at: AT } });
  }
  return events as PatchEvent[];
}

/** A finite state space: the value plus the context bits guards read. */
export function serializeForModel(snapshot: AnyMachineSnapshot): string {
  const c = snapshot.context as PatchContext;
  return JSON.stringify([
    snapshot.value,
    c.attention?.phase ?? null,
    c.test.verdict === 'pass',
    (c.retry?.count ?? 0) > 0 ? c.retry?.step : null,
    c.prod.waveIndex > 0,
  ]);
}
