/**
 * The test phases against UYUNI, Salt and Prometheus (design §3 phase 3, status notes §6.6 and §8):
 * snapshot → baseline (metrics, services, package versions) → apply (`system.scheduleApplyErrata`,
 * reconciled against actions already scheduled for that system and advisory) → await the UYUNI
 * action (per-system result, failure message kept) → [stabilise: the machine's timer] → reboot
 * check → reboot (UYUNI) and wait for the host → validation (judge) → verdict. On failure the
 * test system is rolled back by `testRollback.ts`.
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
import { TransientError } from '../machines/effects.ts';
import type { EffectOut, Effects } from '../machines/patch.machine.ts';
import { lastPhaseOfTest, lastRollbackOnSystem } from '../persistence/sql/phases.ts';
import { setTestBaseline, setTestValidation } from '../persistence/sql/testResults.ts';
import { judgeTest, machineVerdict } from '../services/judge/testJudge.ts';
import { canaryPolicyOf, loadCanaryMetrics, loadCanaryPolicy, loadThresholds } from '../services/settings.ts';
import { saltCall, uyuniCall, type EngineDeps } from './deps.ts';
import { errataFacts } from './errata.ts';
import { collectEvidence, servicesFor, teamHealthchecks } from './evidence.ts';
import { packageVersions } from './packages.ts';
import { inPhase, recordWait, testIdOf } from './phases.ts';
import { rebootRequired } from './reboots.ts';
import { timing } from './timing.ts';
import { awaitActions, recordActions } from './uyuniActions.ts';
import { storedBaseline, testSystemOf, waitForHost, type StoredEvidence } from './testSystem.ts';
import { baselineWindow, postWindow, windowTiming, type BaselineWindow, type SampledWindow } from './windows.ts';

export { reconcileTest } from './testReconcile.ts';

export type { StoredEvidence } from './testSystem.ts';

/**
 * The test phases' effects.
 * @example const ports = { ...testPorts(e), ...rolloutPorts(e) };
 */
export function testPorts(e: EngineDeps) {
  return {
    async takeSnapshot(input: Effects['takeSnapshot']['in']): Promise<EffectOut<'takeSnapshot'>> {
      return inPhase(e.db, input, 'snapshot', async () => {
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
    ): Promise<EffectOut<'collectBaseline'>> {
      return inPhase(e.db, input, 'baseline', async () => {
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

    async applyErrata(input: Effects['applyErrata']['in']): Promise<EffectOut<'applyErrata'>> {
      return inPhase(e.db, input, 'apply', async () => {
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

    async awaitAction(input: Effects['awaitAction']['in'], signal: AbortSignal): Promise<EffectOut<'awaitAction'>> {
      return inPhase(e.db, input, 'await_action', async () => {
        const sys = await testSystemOf(e, input);
        const { pollMs } = timing(await loadThresholds(e.db));
        const r = (await awaitActions(e, input.actionIds, [sys.id], pollMs, signal)).get(sys.id)!;
        return { out: { ok: r.ok, message: r.message }, outcome: r.ok ? 'ok' : 'failed' };
      });
    },

    async checkReboot(input: Effects['checkReboot']['in']): Promise<EffectOut<'checkReboot'>> {
      await recordWait(e.db, input, 'stabilize', 'await_action');
      return inPhase(e.db, input, 'check_reboot', async () => {
        const sys = await testSystemOf(e, input);
        const r = await rebootRequired(e, [sys.name]);
        if (r.missing.length > 0) {
          throw new TransientError(`test system ${sys.name} did not answer the reboot-required check`);
        }
        return { out: { required: r.required.get(sys.name) === true } };
      });
    },

    async scheduleReboot(input: Effects['scheduleReboot']['in']): Promise<EffectOut<'scheduleReboot'>> {
      return inPhase(e.db, input, 'reboot', async () => {
        const sys = await testSystemOf(e, input);
        const id = await uyuniCall(e, (s) => s.scheduleReboot(sys.id));
        await recordActions(e.db, input.key, [sys.id], [id]);
        return { out: { actionId: id } };
      });
    },

    async awaitHost(input: Effects['awaitHost']['in'], signal: AbortSignal): Promise<EffectOut<'awaitHost'>> {
      return inPhase(e.db, input, 'await_host', async () => {
        const sys = await testSystemOf(e, input);
        const { pollMs } = timing(await loadThresholds(e.db));
        await waitForHost(e, sys, input.rebootActionId, pollMs, signal);
        return { out: {} };
      });
    },

    async validate(input: Effects['validate']['in'], signal?: AbortSignal): Promise<EffectOut<'validate'>> {
      await recordWait(e.db, input, 'settle', 'await_host');
      return inPhase(e.db, input, 'validate', async () => {
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
  };
}
