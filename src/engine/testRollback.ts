/**
 * The rollback of a test system after a failed test (design §3 phase 3): nothing when the test
 * failed before the apply; else the test's pending UYUNI actions settled first (a queued apply
 * cancelled, a running one waited for), then a package rollback to the versions recorded at
 * baseline when no reboot was needed, or snapper's pre-patch snapshot and a reboot when it was.
 * Each step runs once across crashes (snapper's "writable copy of #N", the reboot action recorded).
 */
import { effectKeyLikePattern } from '../machines/effectKey.ts';
import { TransientError } from '../machines/effects.ts';
import type { EffectOut, Effects } from '../machines/patch.machine.ts';
import { countEffectsMatching, listEffectActionIds } from '../persistence/sql/effects.ts';
import { completeTestRollback, failTestRollback, insertTestRollback } from '../persistence/sql/rollbacks.ts';
import { enqueueAlert } from '../services/alerts.ts';
import { loadThresholds } from '../services/settings.ts';
import { saltCall, uyuniCall, type EngineDeps } from './deps.ts';
import { restorePackages } from './packages.ts';
import { inPhase, testIdOf } from './phases.ts';
import { storedBaseline, testSystemOf, waitForHost } from './testSystem.ts';
import { timing } from './timing.ts';
import { findUnclaimedAction, ownActions, recordActions, settleActions } from './uyuniActions.ts';
import { isTransient } from '../transient.ts';

/**
 * The test system back at its state before the patch: the recorded package versions when no reboot
 * was needed, else snapper's pre-patch snapshot (the Salt module has no rollback: cmd.run) and a
 * reboot through UYUNI; each step only once.
 */
async function restoreTestSystem(
  e: EngineDeps,
  input: Effects['rollbackTest']['in'],
  sys: { id: number; name: string },
  type: 'package' | 'system',
  pollMs: number,
  signal: AbortSignal,
): Promise<void> {
  const notResponding = () => new TransientError(`test system ${sys.name} is not responding`);
  if (type === 'package') {
    const base = await storedBaseline(e, input);
    if (base.packages === null) {
      throw new Error('no package versions were recorded at baseline: package rollback impossible');
    }
    const r = await restorePackages(e, new Map([[sys.name, base.packages]]));
    if (r.failed.length > 0) {
      if (r.failed.every((f) => f.message === 'not responding')) throw notResponding();
      throw new Error(r.failed.map((f) => f.message).join('; '));
    }
    return;
  }
  const n = input.snapshotId!;
  const snaps = await saltCall(() => e.salt.listSnapshots([sys.name]));
  if (snaps.missing.length > 0) throw notResponding();
  if (!snaps.returned[sys.name]!.some((s) => s.description === `writable copy of #${n}`)) {
    const cmd = `snapper -c root rollback ${Number(n)}`;
    const out = await saltCall(() => e.salt.local<string>([sys.name], 'cmd.run', [cmd]));
    const text = String(out.returned[sys.name] ?? '');
    if (out.missing.length > 0) throw notResponding();
    if (!/read-write snapshot|writable copy/i.test(text)) {
      throw new Error(`snapper rollback ${n} failed: ${text.slice(0, 300)}`);
    }
  }
  let actionId =
    (await ownActions(e.db, input.key))[0] ??
    (await findUnclaimedAction(e, sys.id, (ev) => ev.action_type === 'System reboot'));
  if (actionId === null) {
    actionId = await uyuniCall(e, (s) => s.scheduleReboot(sys.id));
    await recordActions(e.db, input.key, [sys.id], [actionId]);
  }
  await waitForHost(e, sys, actionId, pollMs, signal);
}

/**
 * The test rollback's effect.
 * @example const ports = { ...testPorts(e), ...testRollbackPorts(e) };
 */
export function testRollbackPorts(e: EngineDeps) {
  return {
    async rollbackTest(input: Effects['rollbackTest']['in'], signal: AbortSignal): Promise<EffectOut<'rollbackTest'>> {
      return inPhase(e.db, input, 'rollback', async () => {
        const name = input.testSystem?.name ?? 'the test system';
        await enqueueAlert(e.db, {
          type: 'test_failed',
          key: `${input.key}:alert`,
          errataId: input.errataId,
          queueId: input.entryId,
          subject: `Test failed: ${input.errataId} on ${name}`,
          body:
            `The test of ${input.errataId} on ${name} failed: ${input.reason}\n` +
            'The test system is being rolled back.',
        });
        // Nothing was ever sent to UYUNI for this attempt (it failed before the apply): nothing to
        // undo — decided before the system is even looked up, so a test that failed because UYUNI
        // does not know the system does not fail its rollback too (issue 11). Any round of the
        // apply step counts (an operator retry runs it under `apply#N`).
        const applyKeys = effectKeyLikePattern(input.entryId, input.attempt, false, 'apply');
        const applyTried = await countEffectsMatching(e.db, input.entryId, applyKeys);
        if (applyTried === 0) {
          return {
            out: { type: 'package' as const },
            evidence: { type: 'none', reason: 'the test failed before the errata was applied: nothing to roll back' },
            outcome: 'skipped' as const,
          };
        }
        const sys = await testSystemOf(e, input);
        const testId = await testIdOf(e.db, input.entryId, input.attempt, input.errataId);
        const type = input.rebootRequired && input.snapshotId !== null ? 'system' : 'package';
        await insertTestRollback(e.db, {
          testId,
          queueId: input.entryId,
          errataId: input.errataId,
          type,
          systemId: sys.id,
          reason: input.reason,
          key: input.key,
        });
        const t = await loadThresholds(e.db);
        const { pollMs, unitMs } = timing(t);
        // Nothing of this test may still be pending on UYUNI (a step timeout left the apply queued
        // or running): cancelled, or waited for, before anything is restored.
        const actions = await listEffectActionIds(e.db, input.entryId, applyKeys);
        const settled = await settleActions(e, actions, sys.id, pollMs, (t.step_timeout_seconds * unitMs) / 2, signal);
        if (settled.cancelled.length > 0 || settled.waited.length > 0)
          e.logger.warn(
            { key: input.key, ...settled },
            'test rollback: pending UYUNI actions of the test settled first',
          );
        try {
          await restoreTestSystem(e, input, sys, type, pollMs, signal);
        } catch (raw) {
          if (!isTransient(raw)) {
            await failTestRollback(e.db, input.key, (raw as Error).message);
          }
          throw raw;
        }
        await completeTestRollback(e.db, input.key);
        return {
          out: { type },
          evidence: { type, system: sys.name, snapshotId: input.snapshotId, uyuniActions: settled },
        };
      });
    },
  };
}
