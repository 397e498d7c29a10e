/**
 * Production (design §3 phase 6, §12 L6–L7), after the CLM promotion (promotion.ts): a deployment
 * plan (production systems the errata applies to, in waves per group — a canary, then cumulative
 * percentages), each wave inside its group's maintenance window with one `scheduleApplyErrata` for
 * all its systems, a pre-wave snapshot and package versions (for a rollback), per-system results,
 * reboots inside the window, post-wave checks with the judge, and a halt when failures exceed the
 * error threshold (count or percentage, as AWS rate control). Then a final verification. Operator
 * rollbacks are in rollbacks.ts.
 *
 * The number of UYUNI and Salt calls of a wave does not grow with its systems.
 * Every step resumes: per-system rows record what happened, and a re-run acts only on the rest.
 */
import { parseEffectKey, productionAttemptKey } from '../machines/effectKey.ts';
import { TransientError } from '../machines/effects.ts';
import type { EffectOut, Effects } from '../machines/patch.machine.ts';
import {
  acquireGroupLocks,
  deferReboots,
  findDeploymentByPlanKey,
  finishDeployment,
  getLatestApprovalId,
  haltDeployment,
  insertDeployment,
  insertDeploymentSystems,
  markRebooted,
  markRebootLost,
  markRebootNotNeeded,
  markRebootRequested,
  markSystemsScheduled,
  recordPostWaveChecks,
  recordSystemOutcomes,
  recordWaveBaseline,
  releaseUnstartedGroupLocks,
  setDeploymentCounters,
  setDeploymentWaitReason,
  setDeploymentWaiting,
  setDeploymentWindow,
  startDeploymentWave,
  type DeploymentRow,
  type DeploymentSystemRow,
} from '../persistence/sql/rollout.ts';
import { listProductionSystems } from '../persistence/sql/systems.ts';
import { enqueueAlert } from '../services/alerts.ts';
import { judge } from '../services/judge.ts';
import { loadRolloutPolicy, loadThresholds, type RolloutPolicy, type Thresholds } from '../services/settings.ts';
import { saltCall, uyuniCall, type EngineDeps } from './deps.ts';
import { errataFacts } from './errata.ts';
import { collectEvidence, servicesFor } from './evidence.ts';
import { packageVersions } from './packages.ts';
import { rebootOnce, rebootRequired } from './reboots.ts';
import { sleep, timing } from './timing.ts';
import { awaitActions, findUnclaimedAction, ownActions, recordActions } from './uyuniActions.ts';
import { planWaves, systemsByGroup, thresholdExceeded } from './waves.ts';

import { deploymentOf, groupWaitReason, systemsOf, windowOf } from './rolloutLookups.ts';

export { deploymentOf, groupWaitReason, systemsOf } from './rolloutLookups.ts';

/** Reboot the wave's systems that need it, inside the window, each once (`rebootOnce`). */
async function rebootStage(
  e: EngineDeps,
  depId: number,
  waveIndex: number,
  group: string,
  t: Thresholds,
  signal: AbortSignal,
): Promise<void> {
  const { pollMs, unitMs } = timing(t);
  const rows = (await systemsOf(e, depId, waveIndex)).filter(
    (r) =>
      r.status === 'succeeded' &&
      (r.reboot_state === null || r.reboot_state === 'requested' || r.reboot_state === 'deferred'),
  );
  if (rows.length === 0) return;
  const fresh = rows.filter((r) => r.reboot_state === null || r.reboot_state === 'deferred').map((r) => r.system_name);
  let yes: string[] = [];
  if (fresh.length > 0) {
    const need = await rebootRequired(e, fresh);
    if (need.missing.length > 0) {
      throw new TransientError(`not responding to the reboot check: ${need.missing.join(', ')}`);
    }
    await markRebootNotNeeded(
      e.db,
      depId,
      fresh.filter((m) => need.required.get(m) !== true),
    );
    yes = fresh.filter((m) => need.required.get(m) === true);
    if (yes.length > 0 && (await windowOf(e, group, 0, e.clock.now())).open === null) {
      // Reboots in production only inside the window: the systems stay patched and wait.
      await deferReboots(e.db, depId, yes);
      e.logger.warn({ deployment: depId, systems: yes }, 'reboot needed but the window is closed: deferred');
      return;
    }
  }
  const hosts = [
    ...yes.map((name) => ({ name, requestedAt: null })),
    ...rows
      .filter((r) => r.reboot_state === 'requested')
      .map((r) => ({ name: r.system_name, requestedAt: r.reboot_requested_at })),
  ];
  if (hosts.length === 0) return;
  const record = (names: string[]) => markRebootRequested(e.db, depId, names).then(() => undefined);
  const deadlineMs = t.reboot_timeout_seconds * unitMs;
  const { back, lost } = await rebootOnce(e, hosts, record, { pollMs, deadlineMs, graceMs: 60 * unitMs }, signal);
  if (back.length > 0) await markRebooted(e.db, depId, back);
  if (lost.length > 0) await markRebootLost(e.db, depId, lost);
}

/**
 * Apply the errata to the wave's systems not done yet: pre-wave snapshot and package versions,
 * one UYUNI action for all of them (reconciled after a crash), then each system's result.
 */
async function applyWave(
  e: EngineDeps,
  dep: DeploymentRow,
  input: Effects['deployWave']['in'],
  todo: DeploymentSystemRow[],
  pollMs: number,
  signal: AbortSignal,
): Promise<void> {
  await startDeploymentWave(e.db, dep.id, input.waveIndex);
  const facts = await errataFacts(e, dep.errata_id);
  const pending = todo.filter((r) => r.action_id === null);
  if (pending.length > 0) {
    // Before the wave: a snapshot and the package versions of each system (what a rollback needs).
    const minions = pending.map((r) => r.system_name);
    const snaps = await saltCall(() => e.salt.snapshotsOnce(minions, input.key));
    const pk = await packageVersions(e, minions, facts.packageNames);
    if (pk.missing.length > 0) throw new TransientError(`not responding before the wave: ${pk.missing.join(', ')}`);
    await recordWaveBaseline(
      e.db,
      dep.id,
      pending.map((r) => ({
        systemId: r.system_id,
        packages: pk.versions.get(r.system_name) ?? {},
        snapshotId: String(snaps.get(r.system_name)!.id),
      })),
    );
    // Scheduled already by a run that crashed before recording it?
    const ids = pending.map((r) => r.system_id);
    let actionId =
      (await ownActions(e.db, input.key))[0] ??
      (await findUnclaimedAction(
        e,
        pending[0]!.system_id,
        (ev) => (ev.name ?? '').includes(dep.errata_id) && ev.action_type !== 'System reboot',
      ));
    if (actionId === null) {
      const scheduled = await uyuniCall(e, (s) => s.scheduleApplyErrata(ids, [facts.uyuni_errata_id!]));
      await recordActions(e.db, input.key, ids, scheduled);
      if (scheduled.length > 1) {
        e.logger.warn({ ids: scheduled }, 'UYUNI split the wave into several actions: tracking all');
      }
      actionId = scheduled[0]!;
    }
    await markSystemsScheduled(e.db, dep.id, ids, actionId);
  }
  const rows = await systemsOf(e, dep.id, input.waveIndex);
  const running = rows.filter((r) => r.status === 'scheduled' || r.status === 'in_progress');
  // Every action of the wave: UYUNI may split one schedule into several (all recorded under the key).
  const actionIds = [...new Set([...running.map((r) => r.action_id!), ...(await ownActions(e.db, input.key))])];
  const outcome = await awaitActions(
    e,
    actionIds,
    running.map((r) => r.system_id),
    pollMs,
    signal,
  );
  await recordSystemOutcomes(
    e.db,
    dep.id,
    running.map((r) => {
      const o = outcome.get(r.system_id)!;
      return { systemId: r.system_id, status: o.ok ? ('succeeded' as const) : ('failed' as const), message: o.message };
    }),
  );
}

/** After the stabilisation wait, the critical services of each patched system not checked yet. */
async function checkWave(e: EngineDeps, dep: DeploymentRow, waveIndex: number, t: Thresholds, signal: AbortSignal) {
  const rows = await systemsOf(e, dep.id, waveIndex);
  const unchecked = rows.filter((r) => r.status === 'succeeded' && r.checked_at === null);
  if (unchecked.length === 0) return;
  await sleep(t.wait_after_patch_seconds * timing(t).unitMs, signal); // stabilise, as on the test system
  const facts = await errataFacts(e, dep.errata_id);
  const services = await servicesFor(e.db, facts.target_os);
  const post = await collectEvidence(
    e,
    unchecked.map((r) => r.system_name),
    services,
    timing(t).windowS,
  );
  await recordPostWaveChecks(
    e.db,
    dep.id,
    unchecked.map((r) => ({
      systemId: r.system_id,
      bad: Object.entries(post.get(r.system_name)!.services)
        .filter(([, v]) => v === false)
        .map(([x]) => x)
        .join(', '),
    })),
  );
}

/** Counters and the error threshold over the whole deployment; the last wave ends it. */
async function closeWave(
  e: EngineDeps,
  dep: DeploymentRow,
  input: Effects['deployWave']['in'],
  waveCount: number,
  policy: RolloutPolicy,
): Promise<EffectOut<'deployWave'>> {
  const all = await systemsOf(e, dep.id);
  const failed = all.filter((r) => r.status === 'failed');
  const succeeded = all.filter((r) => r.status === 'succeeded');
  await setDeploymentCounters(e.db, dep.id, {
    succeeded: succeeded.length,
    failedIds: failed.map((r) => r.system_id),
  });
  const exceeded = thresholdExceeded(failed.length, dep.total_systems, policy);
  if (exceeded !== null) {
    await haltDeployment(e.db, dep.id, `wave ${input.waveIndex}: ${exceeded}`);
    await enqueueAlert(e.db, {
      type: 'prod_failed',
      key: `${input.key}:halt`,
      errataId: dep.errata_id,
      queueId: dep.queue_id,
      subject: `Production deployment halted: ${dep.errata_id}`,
      body:
        `Deployment ${dep.id} of ${dep.errata_id} halted at wave ${input.waveIndex}: ${exceeded}.\n` +
        `Failed systems: ${failed.map((r) => r.system_name).join(', ')}\n` +
        'Later waves will not start. Roll back or retry from the dashboard or ' +
        `POST /api/v1/deployments/${dep.id}/rollback.`,
    });
    return { outcome: 'halted', reason: exceeded };
  }
  if (input.waveIndex === waveCount - 1) {
    await finishDeployment(e.db, dep.id, failed.length > 0 ? 'partial_failure' : 'completed');
  }
  return { outcome: 'ok', reason: null };
}

/** The production effects before an operator rollback. @example const ports = { ...rolloutPorts(e) }; */
export function rolloutPorts(e: EngineDeps) {
  return {
    async planDeployment(input: Effects['planDeployment']['in']): Promise<EffectOut<'planDeployment'>> {
      const policy = await loadRolloutPolicy(e.db);
      const facts = await errataFacts(e, input.errataId);
      // One plan per production attempt: a re-run or an operator retry round of the step finds it.
      const planKey = productionAttemptKey(input.entryId, parseEffectKey(input.key)?.attempt ?? 1);
      let dep = await findDeploymentByPlanKey(e.db, planKey);
      if (!dep) {
        const systems = await listProductionSystems(e.db, input.targetOs, facts.affected_system_ids);
        const byGroup = systemsByGroup(systems);
        // The approval covers the groups the errata targeted when it was given: one added since is
        // not approved (nothing is planned; the entry goes back to the approvers).
        const added =
          input.approvedGroups === null ? [] : [...byGroup.keys()].filter((g) => !input.approvedGroups!.includes(g));
        if (added.length > 0) {
          return {
            scopeChanged:
              `the errata now also targets production group${added.length > 1 ? 's' : ''} ${added.sort().join(', ')}, ` +
              `which the approval does not cover (approved for: ${input.approvedGroups!.join(', ') || 'no group'})`,
          };
        }
        const waves = planWaves(byGroup, policy);
        const names = new Map(systems.map((s) => [s.system_id, s]));
        const approvalId = await getLatestApprovalId(e.db, input.entryId);
        dep = await e.db.transaction(async (tx) => {
          const d = await insertDeployment(tx, {
            queueId: input.entryId,
            approvalId,
            errataId: input.errataId,
            group: [...byGroup.keys()].sort().join(',') || null,
            systems: systems.map((s) => s.system_id),
            waves: waves.map((w, i) => ({ index: i, group: w.group, systems: w.systems })),
            planKey,
          });
          for (const [i, w] of waves.entries()) {
            await insertDeploymentSystems(
              tx,
              d.id,
              i,
              w.group,
              w.systems,
              w.systems.map((s) => names.get(s)!.name),
            );
          }
          return d;
        });
      }
      const waves = dep.waves as { group: string }[];
      // The window of the first wave still to run.
      const rows = await systemsOf(e, dep.id);
      const nextWave = waves.findIndex((_, i) => rows.some((r) => r.wave === i && r.status === 'pending'));
      const group = nextWave >= 0 ? waves[nextWave]!.group : null;
      const w = await windowOf(e, group, policy.min_window_remaining_minutes * 60_000, e.clock.now());
      if (group !== null && !w.configured) {
        throw new Error(`no maintenance window is configured for ${group} (orchestrator_config.maintenance_windows)`);
      }
      const win = w.next ?? { opensAt: e.clock.now(), closesAt: null };
      await setDeploymentWindow(e.db, dep.id, win.opensAt, win.closesAt);
      return {
        deploymentId: dep.id,
        waveCount: waves.length,
        windowOpensAt: win.opensAt,
        windowClosesAt: win.closesAt,
      };
    },

    async deployWave(input: Effects['deployWave']['in'], signal: AbortSignal): Promise<EffectOut<'deployWave'>> {
      const dep = await deploymentOf(e, input.deploymentId);
      const waves = dep.waves as { group: string; systems: number[] }[];
      const wave = waves[input.waveIndex];
      if (!wave) return { outcome: 'ok', reason: null }; // no systems to patch
      const policy = await loadRolloutPolicy(e.db);
      const t = await loadThresholds(e.db);
      const { pollMs } = timing(t);
      const rows = await systemsOf(e, dep.id, input.waveIndex);
      const todo = rows.filter((r) => r.status === 'pending' || r.status === 'scheduled' || r.status === 'in_progress');
      if (todo.length > 0) {
        let said: string | null = null;
        for (;;) {
          // No wave starts outside its group's window, or with too little of it left.
          const w = await windowOf(e, wave.group, policy.min_window_remaining_minutes * 60_000, e.clock.now());
          if (w.open === null && rows.every((r) => r.status === 'pending')) {
            await releaseUnstartedGroupLocks(e.db, dep.id);
            await setDeploymentWaiting(e.db, dep.id);
            return {
              outcome: 'window_closed',
              reason:
                `the maintenance window of ${wave.group} is closed or ends within ` +
                `${policy.min_window_remaining_minutes} min`,
            };
          }
          // One deployment in progress per production group (a database constraint): every group
          // of this deployment is taken before its first system is touched, and kept until its
          // entry leaves production; meanwhile another entry's deployment waits here.
          const busy = await acquireGroupLocks(e.db, {
            deploymentId: dep.id,
            queueId: dep.queue_id,
            errataId: dep.errata_id,
            groups: waves.map((x) => x.group),
          });
          if (busy === null) break;
          const reason = groupWaitReason(busy);
          if (reason !== said) {
            await setDeploymentWaitReason(e.db, dep.id, reason);
            e.logger.info({ deployment: dep.id, reason }, 'production group busy: the deployment waits');
            said = reason;
          }
          await sleep(pollMs, signal);
        }
        await applyWave(e, dep, input, todo, pollMs, signal);
      }
      // Stages after the apply, each resumable from the per-system rows.
      await rebootStage(e, dep.id, input.waveIndex, wave.group, t, signal);
      await checkWave(e, dep, input.waveIndex, t, signal);
      return closeWave(e, dep, input, waves.length, policy);
    },

    async verifyDeployment(input: Effects['verifyDeployment']['in']): Promise<EffectOut<'verifyDeployment'>> {
      const dep = await deploymentOf(e, input.deploymentId);
      const rows = (await systemsOf(e, dep.id)).filter((r) => r.status === 'succeeded');
      if (rows.length === 0) return { ok: true, reason: null };
      const t = await loadThresholds(e.db);
      const facts = await errataFacts(e, dep.errata_id);
      const services = await servicesFor(e.db, facts.target_os);
      const post = await collectEvidence(
        e,
        rows.map((r) => r.system_name),
        services,
        timing(t).windowS,
      );
      const bad: string[] = [];
      let unknown = 0;
      for (const r of rows) {
        const ev = post.get(r.system_name)!;
        const allUp = Object.fromEntries(services.map((s) => [s, true]));
        const v = judge({ ...ev, cpuPercent: null, memoryPercent: null, services: allUp }, ev, t);
        if (v.verdict === 'fail') bad.push(`${r.system_name}: ${v.failedServices.join(', ')}`);
        if (v.verdict === 'inconclusive') unknown++;
      }
      if (bad.length > 0) {
        return { ok: false, reason: `services not active on ${bad.length} system(s): ${bad.slice(0, 5).join('; ')}` };
      }
      if (unknown === rows.length) {
        throw new TransientError('post-deployment checks: no evidence (Prometheus and Salt unavailable)');
      }
      return { ok: true, reason: null };
    },
  };
}
