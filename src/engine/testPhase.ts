/**
 * The test phases against UYUNI, Salt and Prometheus (design §3 phase 3, status notes §6.6 and §8):
 * snapshot → baseline (metrics, services, package versions) → apply (`system.scheduleApplyErrata`,
 * reconciled against actions already scheduled for that system and advisory) → await the UYUNI
 * action (per-system result, failure message kept) → [stabilise: the machine's timer] → reboot
 * check → reboot (UYUNI) and wait for the host → validation (judge) → verdict; on failure the
 * rollback of the test system: package rollback when no reboot was needed, snapshot rollback
 * when it was.
 *
 * The judge compares windows, not instants (issue 13, `windows.ts`): the baseline waits until
 * Prometheus has the samples of every required metric before the patch; validation collects the
 * post window after stabilisation and judges it with `judgeTest` (the window judge over
 * `orchestrator_config.canary_metrics`, plus the critical services from Salt and the reboot).
 * Without Prometheus configured the services alone decide, and the evidence says so.
 *
 * Every function is safe to run again for the same effect key: it first looks at the outside
 * world (snapper descriptions carry the key, UYUNI actions are matched to known ids, package
 * versions are compared) and only acts for what has not happened yet.
 */
import { effectKeyLikePattern } from '../machines/effectKey.ts';
import { TransientError } from '../machines/effects.ts';
import type { Effects, EffectInput } from '../machines/patch.machine.ts';
import { countEffectsMatching, listEffectActionIds } from '../persistence/sql/effects.ts';
import { completeTestRollback, failTestRollback, insertTestRollback } from '../persistence/sql/rollbacks.ts';
import { lastPhaseOfTest, lastRollbackOnSystem } from '../persistence/sql/phases.ts';
import { getTestBaseline, setTestBaseline, setTestValidation } from '../persistence/sql/testResults.ts';
import { enqueueAlert } from '../services/alerts.ts';
import type { Evidence } from '../services/judge.ts';
import { judgeTest, machineVerdict } from '../services/judge/testJudge.ts';
import { canaryPolicyOf, loadCanaryMetrics, loadCanaryPolicy, loadThresholds } from '../services/settings.ts';
import { saltCall, uyuniCall, type EngineDeps } from './deps.ts';
import { errataFacts, systemIdOf } from './errata.ts';
import { collectEvidence, servicesFor, teamHealthchecks } from './evidence.ts';
import { packageVersions, restorePackages } from './packages.ts';
import { inPhase, recordWait, testIdOf } from './phases.ts';
import { rebootRequired } from './reboots.ts';
import { sleep, timing } from './timing.ts';
import { awaitActions, findUnclaimedAction, ownActions, recordActions, settleActions } from './uyuniActions.ts';
import { baselineWindow, postWindow, windowTiming, type BaselineWindow, type SampledWindow } from './windows.ts';

export { reconcileTest } from './testReconcile.ts';

type Out<N extends keyof Effects> = Omit<Effects[N]['out'], 'at'>;

/** `patch_tests.baseline_metrics` / `post_patch_metrics`: the live evidence and, with Prometheus, the window. */
export type StoredEvidence = Evidence & { window?: BaselineWindow | SampledWindow | null };

async function testSystemOf(e: EngineDeps, input: EffectInput): Promise<{ id: number; name: string }> {
  if (!input.testSystem) throw new Error('no test system assigned to this entry');
  return { id: await systemIdOf(e.db, input.testSystem.name, input.testSystem.id), name: input.testSystem.name };
}

async function storedBaseline(
  e: EngineDeps,
  input: EffectInput,
): Promise<{ evidence: StoredEvidence | null; packages: Record<string, string> | null }> {
  const r = await getTestBaseline(e.db, input.entryId, input.attempt);
  return {
    evidence: (r?.baseline_metrics as StoredEvidence | null) ?? null,
    packages: (r?.package_versions_before as Record<string, string> | null) ?? null,
  };
}

async function waitForHost(
  e: EngineDeps,
  sys: { id: number; name: string },
  actionId: number | null,
  pollMs: number,
  signal: AbortSignal,
): Promise<void> {
  if (actionId !== null) {
    const r = (await awaitActions(e, [actionId], [sys.id], pollMs, signal)).get(sys.id)!;
    if (!r.ok) throw new Error(`reboot of ${sys.name} failed in UYUNI: ${r.message}`);
  }
  for (;;) {
    const ping = await e.salt
      .local<boolean>([sys.name], 'test.ping')
      .catch(() => ({ returned: {} as Record<string, boolean>, missing: [sys.name] }));
    if (ping.returned[sys.name] === true) return;
    await sleep(pollMs, signal);
  }
}

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
 * The test phases' effects.
 * @example const ports = { ...testPorts(e), ...rolloutPorts(e) };
 */
export function testPorts(e: EngineDeps) {
  const phaseOf = (input: EffectInput) => ({
    key: input.key,
    entryId: input.entryId,
    attempt: input.attempt,
    errataId: input.errataId,
  });

  return {
    async takeSnapshot(input: Effects['takeSnapshot']['in']): Promise<Out<'takeSnapshot'>> {
      return inPhase(e.db, phaseOf(input), 'snapshot', async () => {
        const sys = await testSystemOf(e, input);
        const snap = await saltCall(() => e.salt.snapshotOnce(sys.name, input.key));
        return {
          out: { snapshotId: String(snap.id) },
          evidence: { snapshotId: snap.id, type: 'snapper', reused: !snap.created },
        };
      });
    },

    async collectBaseline(
      input: Effects['collectBaseline']['in'],
      signal?: AbortSignal,
    ): Promise<Out<'collectBaseline'>> {
      return inPhase(e.db, phaseOf(input), 'baseline', async () => {
        const sys = await testSystemOf(e, input);
        const t = await loadThresholds(e.db);
        const facts = await errataFacts(e, input.errataId);
        const services = await servicesFor(e.db, input.targetOs);
        // The window first (it may wait for samples), then the live checks right before the patch.
        let window: BaselineWindow | null = null;
        if (e.prometheus) {
          const [metrics, policy] = await Promise.all([loadCanaryMetrics(e.db), loadCanaryPolicy(e.db)]);
          const prometheus = e.prometheus;
          const testId = await testIdOf(e.db, input.entryId, input.attempt, input.errataId);
          const notBefore = await lastRollbackOnSystem(e.db, sys.name, testId);
          window = await baselineWindow(
            { ...e, prometheus },
            { key: input.key, instance: sys.name, metrics, timing: windowTiming(t, policy), notBefore },
            signal,
          );
        }
        const live = (await collectEvidence(e, [sys.name], services, timing(t).windowS)).get(sys.name)!;
        const evidence: StoredEvidence = { ...live, window };
        const pk = await packageVersions(e, [sys.name], facts.packageNames);
        // Without the versions before the patch there is no package rollback: do not patch.
        if (pk.missing.length > 0) throw new TransientError(`test system ${sys.name} did not answer pkg.version`);
        const packages = pk.versions.get(sys.name) ?? {};
        const testId = await testIdOf(e.db, input.entryId, input.attempt, input.errataId);
        await setTestBaseline(e.db, testId, { evidence, services: evidence.services, packages });
        const counts = window
          ? Object.fromEntries(Object.entries(window.samples).map(([k, v]) => [k, v.length]))
          : null;
        const { window: _w, ...rest } = evidence;
        return {
          out: {},
          evidence: {
            ...rest,
            packages,
            ...(window
              ? {
                  window: {
                    start: window.start,
                    end: window.end,
                    step_seconds: window.step_seconds,
                    samples: counts,
                    waited_seconds: window.waited_seconds,
                  },
                }
              : {}),
          },
        };
      });
    },

    async applyErrata(input: Effects['applyErrata']['in']): Promise<Out<'applyErrata'>> {
      return inPhase(e.db, phaseOf(input), 'apply', async () => {
        const sys = await testSystemOf(e, input);
        const facts = await errataFacts(e, input.errataId);
        const ids = await uyuniCall(e, (s) => s.scheduleApplyErrata([sys.id], [facts.uyuni_errata_id!]));
        await recordActions(e.db, input.key, [sys.id], ids);
        return {
          out: { actionIds: ids },
          evidence: { actionIds: ids, systemId: sys.id, uyuniErrataId: facts.uyuni_errata_id },
        };
      });
    },

    async awaitAction(input: Effects['awaitAction']['in'], signal: AbortSignal): Promise<Out<'awaitAction'>> {
      return inPhase(e.db, phaseOf(input), 'await_action', async () => {
        const sys = await testSystemOf(e, input);
        const { pollMs } = timing(await loadThresholds(e.db));
        const r = (await awaitActions(e, input.actionIds, [sys.id], pollMs, signal)).get(sys.id)!;
        return { out: { ok: r.ok, message: r.message }, outcome: r.ok ? 'ok' : 'failed' };
      });
    },

    async checkReboot(input: Effects['checkReboot']['in']): Promise<Out<'checkReboot'>> {
      await recordWait(e.db, phaseOf(input), 'stabilize', 'await_action');
      return inPhase(e.db, phaseOf(input), 'check_reboot', async () => {
        const sys = await testSystemOf(e, input);
        const r = await rebootRequired(e, [sys.name]);
        if (r.missing.length > 0) {
          throw new TransientError(`test system ${sys.name} did not answer the reboot-required check`);
        }
        return { out: { required: r.required.get(sys.name) === true } };
      });
    },

    async scheduleReboot(input: Effects['scheduleReboot']['in']): Promise<Out<'scheduleReboot'>> {
      return inPhase(e.db, phaseOf(input), 'reboot', async () => {
        const sys = await testSystemOf(e, input);
        const id = await uyuniCall(e, (s) => s.scheduleReboot(sys.id));
        await recordActions(e.db, input.key, [sys.id], [id]);
        return { out: { actionId: id } };
      });
    },

    async awaitHost(input: Effects['awaitHost']['in'], signal: AbortSignal): Promise<Out<'awaitHost'>> {
      return inPhase(e.db, phaseOf(input), 'await_host', async () => {
        const sys = await testSystemOf(e, input);
        const { pollMs } = timing(await loadThresholds(e.db));
        await waitForHost(e, sys, input.rebootActionId, pollMs, signal);
        return { out: {} };
      });
    },

    async validate(input: Effects['validate']['in'], signal?: AbortSignal): Promise<Out<'validate'>> {
      await recordWait(e.db, phaseOf(input), 'settle', 'await_host');
      return inPhase(e.db, phaseOf(input), 'validate', async () => {
        const sys = await testSystemOf(e, input);
        const t = await loadThresholds(e.db);
        const services = await servicesFor(e.db, input.targetOs);
        const base = await storedBaseline(e, input);
        const testId = await testIdOf(e.db, input.entryId, input.attempt, input.errataId);
        // The same queries as the baseline's (a metric configured since has no baseline: no data).
        const baseWindow = (base.evidence?.window as BaselineWindow | null | undefined) ?? null;
        let window: SampledWindow | null = null;
        let canary: Parameters<typeof judgeTest>[0]['canary'] = null;
        if (e.prometheus) {
          const policy = await loadCanaryPolicy(e.db);
          const metrics = baseWindow?.metrics ?? (await loadCanaryMetrics(e.db));
          const prometheus = e.prometheus;
          window = await postWindow(
            { ...e, prometheus },
            { key: input.key, instance: sys.name, metrics, timing: windowTiming(t, policy) },
            signal,
          );
          const windows = Object.fromEntries(
            metrics.map((m) => [
              m.name,
              { baseline: baseWindow?.samples[m.name] ?? [], post: window!.samples[m.name] ?? [] },
            ]),
          );
          canary = { metrics, windows, policy: canaryPolicyOf(policy) };
        }
        const live = (await collectEvidence(e, [sys.name], services, timing(t).windowS)).get(sys.name)!;
        const teamChecks = await teamHealthchecks(e, sys.name);
        const post: StoredEvidence = { ...live, window };
        const checked = await lastPhaseOfTest(e.db, testId, 'check_reboot');
        const required = (checked?.evidence as { required?: boolean } | null)?.required === true;
        const rebooted = (await lastPhaseOfTest(e.db, testId, 'await_host'))?.outcome === 'ok';
        const j = judgeTest({
          services: { baseline: base.evidence?.services ?? {}, post: post.services },
          maxFailedServices: t.max_failed_services,
          canary,
          reboot: checked ? { required, rebooted } : null,
          teamChecks,
        });
        if (base.evidence === null) j.reasons.unshift('no baseline was recorded');
        if (e.prometheus && baseWindow === null)
          j.notes.push('the baseline has no Prometheus window (taken without Prometheus)');
        const v = machineVerdict(j);
        await setTestValidation(e.db, input.entryId, input.attempt, {
          post,
          services: post.services,
          checks: j,
          failedServices: j.failedServices,
        });
        // The machine keeps a summary; the windows and statistics are in patch_tests.metrics_delta.
        const evidence = {
          judge: j.judge,
          verdict: j.verdict,
          marginal: v.marginal,
          score: j.score,
          reasons: j.reasons,
          failedServices: j.failedServices,
          failedTeamChecks: j.failedTeamChecks,
          checks: j.checks,
          metrics: j.metrics.map((m) => ({ name: m.name, classification: m.classification })),
          notes: j.notes,
        };
        return {
          out: { verdict: v.verdict, reason: v.reason, evidence },
          evidence: { ...evidence, post_window: window ? { start: window.start, end: window.end } : null },
          outcome: v.verdict === 'pass' ? 'ok' : 'failed',
        };
      });
    },

    async rollbackTest(input: Effects['rollbackTest']['in'], signal: AbortSignal): Promise<Out<'rollbackTest'>> {
      return inPhase(e.db, phaseOf(input), 'rollback', async () => {
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
        const applyTried = await countEffectsMatching(
          e.db,
          input.entryId,
          effectKeyLikePattern(input.entryId, input.attempt, false, 'apply'),
        );
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
        const actions = await listEffectActionIds(
          e.db,
          input.entryId,
          effectKeyLikePattern(input.entryId, input.attempt, false, 'apply'),
        );
        const settled = await settleActions(
          e,
          [...actions],
          sys.id,
          pollMs,
          (t.step_timeout_seconds * unitMs) / 2,
          signal,
        );
        if (settled.cancelled.length > 0 || settled.waited.length > 0)
          e.logger.warn(
            { key: input.key, ...settled },
            'test rollback: pending UYUNI actions of the test settled first',
          );
        try {
          await restoreTestSystem(e, input, sys, type, pollMs, signal);
        } catch (raw) {
          if ((raw as { transient?: boolean }).transient !== true) {
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
