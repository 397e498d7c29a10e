/**
 * Production (design §3 phase 6, §12 L6–L7): CLM promotion TEST → PROD when a project is configured,
 * a deployment plan (production systems the errata applies to, in waves per group — a canary, then
 * cumulative percentages), each wave inside its group's maintenance window with one
 * `scheduleApplyErrata` for all its systems, a pre-wave snapshot and package versions (for a
 * rollback), per-system results, reboots inside the window, post-wave checks with the judge, and a
 * halt when failures exceed the error threshold (count or percentage, as AWS rate control). Then a
 * final verification. Operator rollbacks are in rollbacks.ts.
 *
 * The number of UYUNI and Salt calls of a wave does not grow with its systems.
 * Every step resumes: per-system rows record what happened, and a re-run acts only on the rest.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { parseEffectKey, productionAttemptKey } from '../machines/effectKey.ts';
import { TransientError } from '../machines/effects.ts';
import type { Effects } from '../machines/patch.machine.ts';
import { enqueueAlert } from '../services/engine/notifier.ts';
import { judge } from '../services/judge.ts';
import { loadClm, loadMaintenanceWindows, loadRolloutPolicy, loadThresholds } from '../services/settings.ts';
import { nextWindow, openWindow, windowsFor } from '../services/windows.ts';
import { saltCall, uyuniCall, type EngineDeps } from './deps.ts';
import { errataFacts } from './errata.ts';
import { collectEvidence, servicesFor } from './evidence.ts';
import { packageVersions } from './packages.ts';
import { rebootOnce, rebootRequired } from './reboots.ts';
import { sleep, timing } from './timing.ts';
import { awaitActions, findUnclaimedAction, ownActions, recordActions } from './uyuniActions.ts';
import { planWaves, thresholdExceeded } from './waves.ts';

type Out<N extends keyof Effects> = Omit<Effects[N]['out'], 'at'>;

const deploymentRow = z.object({ id: z.number(), queue_id: z.number(), errata_id: z.string(), status: z.string(), waves: z.unknown(), total_systems: z.number() });
const systemRow = z.object({
  system_id: z.number(), system_name: z.string(), wave: z.number(), status: z.string(), action_id: z.number().nullable(), packages_before: z.unknown().nullable(),
  snapshot_id: z.string().nullable(), group_name: z.string().nullable(), reboot_state: z.string().nullable(), reboot_requested_at: z.number().nullable(), checked_at: z.number().nullable(),
  rollback_reboot_at: z.number().nullable(),
});
type SystemRow = z.infer<typeof systemRow>;

export async function deploymentOf(e: EngineDeps, id: number) {
  const d = await e.db.maybeOne(sql.type(deploymentRow)`SELECT id, queue_id, errata_id, status, waves, total_systems FROM patch_deployments WHERE id = ${id}`);
  if (!d) throw new Error(`deployment ${id} does not exist`);
  return d;
}
export const systemsOf = (e: EngineDeps, id: number, wave?: number) =>
  e.db.any(sql.type(systemRow)`
    SELECT system_id, system_name, wave, status, action_id, packages_before, snapshot_id, group_name, reboot_state,
           (extract(epoch FROM reboot_requested_at) * 1000)::float8 AS reboot_requested_at, (extract(epoch FROM checked_at) * 1000)::float8 AS checked_at,
           (extract(epoch FROM rollback_reboot_at) * 1000)::float8 AS rollback_reboot_at
    FROM patch_deployment_systems
    WHERE deployment_id = ${id} ${wave === undefined ? sql.fragment`` : sql.fragment`AND wave = ${wave}`} ORDER BY system_id`);

async function windowOf(e: EngineDeps, group: string | null, minRemainingMs: number, now: number) {
  const windows = windowsFor(await loadMaintenanceWindows(e.db), group);
  return { open: openWindow(windows, now, minRemainingMs), next: nextWindow(windows, now, minRemainingMs), configured: windows.length > 0 };
}

/** Reboot the wave's systems that need it, inside the window, each once (`rebootOnce`). */
async function rebootStage(e: EngineDeps, depId: number, waveIndex: number, group: string, t: Awaited<ReturnType<typeof loadThresholds>>, signal: AbortSignal): Promise<void> {
  const { pollMs, unitMs } = timing(t);
  const rows = (await systemsOf(e, depId, waveIndex)).filter((r) => r.status === 'succeeded' && (r.reboot_state === null || r.reboot_state === 'requested' || r.reboot_state === 'deferred'));
  if (rows.length === 0) return;
  const fresh = rows.filter((r) => r.reboot_state === null || r.reboot_state === 'deferred').map((r) => r.system_name);
  let yes: string[] = [];
  if (fresh.length > 0) {
    const need = await rebootRequired(e, fresh);
    if (need.missing.length > 0) throw new TransientError(`not responding to the reboot check: ${need.missing.join(', ')}`);
    const no = fresh.filter((m) => need.required.get(m) !== true);
    await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET reboot_state = 'not_needed' WHERE deployment_id = ${depId} AND system_name = ANY(${sql.array(no, 'text')})`);
    yes = fresh.filter((m) => need.required.get(m) === true);
    if (yes.length > 0 && (await windowOf(e, group, 0, Date.now())).open === null) {
      // Reboots in production only inside the window: the systems stay patched and wait.
      await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET reboot_state = 'deferred', message = 'reboot deferred to the next window' WHERE deployment_id = ${depId} AND system_name = ANY(${sql.array(yes, 'text')})`);
      e.logger.warn({ deployment: depId, systems: yes }, 'reboot needed but the window is closed: deferred');
      return;
    }
  }
  const hosts = [
    ...yes.map((name) => ({ name, requestedAt: null })),
    ...rows.filter((r) => r.reboot_state === 'requested').map((r) => ({ name: r.system_name, requestedAt: r.reboot_requested_at })),
  ];
  if (hosts.length === 0) return;
  const record = (names: string[]) => e.db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET reboot_state = 'requested', reboot_requested_at = now() WHERE deployment_id = ${depId} AND system_name = ANY(${sql.array(names, 'text')})`).then(() => undefined);
  const { back, lost } = await rebootOnce(e, hosts, record, { pollMs, deadlineMs: t.reboot_timeout_seconds * unitMs, graceMs: 60 * unitMs }, signal);
  if (back.length > 0) await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET reboot_state = 'done', message = coalesce(message, '') || ' · rebooted' WHERE deployment_id = ${depId} AND system_name = ANY(${sql.array(back, 'text')})`);
  if (lost.length > 0) await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET reboot_state = 'failed', status = 'failed', message = 'did not come back after the reboot' WHERE deployment_id = ${depId} AND system_name = ANY(${sql.array(lost, 'text')})`);
}

export function rolloutPorts(e: EngineDeps) {
  return {
    async promote(input: Effects['promote']['in'], signal: AbortSignal): Promise<Out<'promote'>> {
      const clm = await loadClm(e.db);
      if (clm.project_label === null) return { skipped: true };
      const project = clm.project_label;
      const { pollMs } = timing(await loadThresholds(e.db));
      const envs = await uyuniCall(e, (s) => s.listProjectEnvironments(project));
      const test = envs.find((x) => x.label === clm.test_environment);
      const prod = envs.find((x) => x.label === clm.prod_environment);
      if (!test || !prod) throw new Error(`CLM project ${project} has no environment ${!test ? clm.test_environment : clm.prod_environment}`);
      if (test.nextEnvironmentLabel !== prod.label) throw new Error(`CLM project ${project}: ${prod.label} does not follow ${test.label}`);
      // Already promoted (a re-run): PROD has TEST's version and is built.
      if (!(prod.version >= test.version && prod.status !== 'building')) {
        try {
          await uyuniCall(e, (s) => s.promoteProject(project, test.label));
        } catch (raw) {
          if (!/already in progress/i.test((raw as Error).message)) throw raw;
        }
      }
      for (;;) {
        const env = await uyuniCall(e, (s) => s.lookupEnvironment(project, prod.label));
        if (env.status === 'failed') throw new Error(`CLM promotion of ${project} to ${prod.label} failed`);
        if (env.status !== 'building' && env.status !== 'generating_repodata' && env.version >= test.version) return { skipped: false };
        await sleep(pollMs, signal);
      }
    },

    async planDeployment(input: Effects['planDeployment']['in']): Promise<Out<'planDeployment'>> {
      const policy = await loadRolloutPolicy(e.db);
      const facts = await errataFacts(e, input.errataId);
      // One plan per production attempt: a re-run or an operator retry round of the step finds it.
      const planKey = productionAttemptKey(input.entryId, parseEffectKey(input.key)?.attempt ?? 1);
      let dep = await e.db.maybeOne(sql.type(z.object({ id: z.number(), waves: z.unknown() }))`SELECT id, waves FROM patch_deployments WHERE plan_key = ${planKey}`);
      if (!dep) {
        const systems = await e.db.any(sql.type(z.object({ system_id: z.number(), name: z.string(), group_name: z.string() }))`
          SELECT system_id, name, group_name FROM uyuni_systems
          WHERE role = 'prod' AND target_os = ${input.targetOs} AND system_id = ANY(${sql.array(facts.affected_system_ids, 'int4')})`);
        const byGroup = new Map<string, number[]>();
        for (const s of systems) byGroup.set(s.group_name, [...(byGroup.get(s.group_name) ?? []), s.system_id]);
        const waves = planWaves(byGroup, policy);
        const names = new Map(systems.map((s) => [s.system_id, s]));
        const approvalId = await e.db.maybeOneFirst(sql.type(z.object({ id: z.number() }))`SELECT id FROM patch_approvals WHERE queue_id = ${input.entryId} AND action = 'approved' ORDER BY id DESC LIMIT 1`);
        dep = await e.db.transaction(async (tx) => {
          const d = await tx.one(sql.type(z.object({ id: z.number(), waves: z.unknown() }))`
            INSERT INTO patch_deployments (queue_id, approval_id, errata_id, target_group, target_systems, total_systems, status, waves, plan_key)
            VALUES (${input.entryId}, ${approvalId}, ${input.errataId}, ${[...byGroup.keys()].sort().join(',') || null}, ${sql.array(systems.map((s) => s.system_id), 'int4')},
                    ${systems.length}, 'scheduled', ${sql.jsonb(waves.map((w, i) => ({ index: i, group: w.group, systems: w.systems })) as never)}, ${planKey})
            RETURNING id, waves`);
          for (const [i, w] of waves.entries()) {
            await tx.query(sql.unsafe`
              INSERT INTO patch_deployment_systems (deployment_id, system_id, system_name, wave, group_name)
              SELECT ${d.id}, x, n, ${i}, ${w.group} FROM unnest(${sql.array(w.systems, 'int4')}::int4[], ${sql.array(w.systems.map((s) => names.get(s)!.name), 'text')}::text[]) AS t(x, n)`);
          }
          return d;
        });
      }
      const waves = dep.waves as { group: string }[];
      // The window of the first wave still to run.
      const rows = await systemsOf(e, dep.id);
      const nextWave = waves.findIndex((_, i) => rows.some((r) => r.wave === i && r.status === 'pending'));
      const group = nextWave >= 0 ? waves[nextWave]!.group : null;
      const w = await windowOf(e, group, policy.min_window_remaining_minutes * 60_000, Date.now());
      if (group !== null && !w.configured) throw new Error(`no maintenance window is configured for ${group} (orchestrator_config.maintenance_windows)`);
      const win = w.next ?? { opensAt: Date.now(), closesAt: null };
      await e.db.query(sql.unsafe`UPDATE patch_deployments SET window_start = to_timestamp(${win.opensAt / 1000}), window_end = ${win.closesAt === null ? null : sql.fragment`to_timestamp(${win.closesAt / 1000})`}, scheduled_at = now() WHERE id = ${dep.id}`);
      return { deploymentId: dep.id, waveCount: waves.length, windowOpensAt: win.opensAt, windowClosesAt: win.closesAt };
    },

    async deployWave(input: Effects['deployWave']['in'], signal: AbortSignal): Promise<Out<'deployWave'>> {
      const dep = await deploymentOf(e, input.deploymentId);
      const waves = dep.waves as { group: string; systems: number[] }[];
      const wave = waves[input.waveIndex];
      if (!wave) return { outcome: 'ok', reason: null }; // no systems to patch
      const policy = await loadRolloutPolicy(e.db);
      const t = await loadThresholds(e.db);
      const { pollMs, windowS } = timing(t);
      let rows = await systemsOf(e, dep.id, input.waveIndex);
      const todo = rows.filter((r) => r.status === 'pending' || r.status === 'scheduled' || r.status === 'in_progress');
      if (todo.length > 0) {
        // No wave starts outside its group's window, or with too little of it left.
        const w = await windowOf(e, wave.group, policy.min_window_remaining_minutes * 60_000, Date.now());
        if (w.open === null && rows.every((r) => r.status === 'pending')) {
          await e.db.query(sql.unsafe`UPDATE patch_deployments SET status = 'scheduled' WHERE id = ${dep.id} AND status IN ('scheduled', 'in_progress')`);
          return { outcome: 'window_closed', reason: `the maintenance window of ${wave.group} is closed or ends within ${policy.min_window_remaining_minutes} min` };
        }
        await e.db.query(sql.unsafe`UPDATE patch_deployments SET status = 'in_progress', current_wave = ${input.waveIndex}, started_at = coalesce(started_at, now()) WHERE id = ${dep.id}`);
        const facts = await errataFacts(e, dep.errata_id);
        const pending = todo.filter((r) => r.action_id === null);
        if (pending.length > 0) {
          // Before the wave: a snapshot and the package versions of each system (what a rollback needs).
          const minions = pending.map((r) => r.system_name);
          const snaps = await saltCall(() => e.salt.snapshotsOnce(minions, input.key));
          const pk = await packageVersions(e, minions, facts.packageNames);
          if (pk.missing.length > 0) throw new TransientError(`not responding before the wave: ${pk.missing.join(', ')}`);
          await e.db.query(sql.unsafe`
            UPDATE patch_deployment_systems s SET packages_before = v.pk, snapshot_id = v.snap
            FROM unnest(${sql.array(pending.map((r) => r.system_id), 'int4')}::int4[], ${sql.array(pending.map((r) => JSON.stringify(pk.versions.get(r.system_name) ?? {})), 'text')}::jsonb[],
                        ${sql.array(pending.map((r) => String(snaps.get(r.system_name)!.id)), 'text')}::text[]) AS v(sid, pk, snap)
            WHERE s.deployment_id = ${dep.id} AND s.system_id = v.sid AND s.packages_before IS NULL`);
          // Scheduled already by a run that crashed before recording it?
          let actionId = (await ownActions(e.db, input.key))[0] ?? (await findUnclaimedAction(e, pending[0]!.system_id, (ev) => (ev.name ?? '').includes(dep.errata_id) && ev.action_type !== 'System reboot'));
          if (actionId === null) {
            const ids = await uyuniCall(e, (s) => s.scheduleApplyErrata(pending.map((r) => r.system_id), [facts.uyuni_errata_id!]));
            await recordActions(e.db, input.key, pending.map((r) => r.system_id), ids);
            if (ids.length > 1) e.logger.warn({ ids }, 'UYUNI split the wave into several actions: tracking all');
            actionId = ids[0]!;
          }
          await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET status = 'scheduled', action_id = ${actionId}, started_at = now() WHERE deployment_id = ${dep.id} AND system_id = ANY(${sql.array(pending.map((r) => r.system_id), 'int4')})`);
        }
        rows = await systemsOf(e, dep.id, input.waveIndex);
        const running = rows.filter((r) => r.status === 'scheduled' || r.status === 'in_progress');
        // Every action of the wave: UYUNI may split one schedule into several (all recorded under the key).
        const actionIds = [...new Set([...running.map((r) => r.action_id!), ...(await ownActions(e.db, input.key))])];
        const outcome = await awaitActions(e, actionIds, running.map((r) => r.system_id), pollMs, signal);
        await e.db.query(sql.unsafe`
          UPDATE patch_deployment_systems s SET status = v.status, message = v.message, completed_at = now()
          FROM unnest(${sql.array(running.map((r) => r.system_id), 'int4')}::int4[], ${sql.array(running.map((r) => (outcome.get(r.system_id)!.ok ? 'succeeded' : 'failed')), 'text')}::text[],
                      ${sql.array(running.map((r) => outcome.get(r.system_id)!.message), 'text')}::text[]) AS v(sid, status, message)
          WHERE s.deployment_id = ${dep.id} AND s.system_id = v.sid`);
      }
      // Stages after the apply, each resumable from the per-system rows.
      await rebootStage(e, dep.id, input.waveIndex, wave.group, t, signal);
      rows = await systemsOf(e, dep.id, input.waveIndex);
      const unchecked = rows.filter((r) => r.status === 'succeeded' && r.checked_at === null);
      if (unchecked.length > 0) {
        await sleep(t.wait_after_patch_seconds * timing(t).unitMs, signal); // stabilise, as on the test system
        const facts = await errataFacts(e, dep.errata_id);
        const services = await servicesFor(e.db, facts.target_os);
        const post = await collectEvidence(e, unchecked.map((r) => r.system_name), services, windowS);
        const bad = unchecked.map((r) => Object.entries(post.get(r.system_name)!.services).filter(([, v]) => v === false).map(([x]) => x));
        await e.db.query(sql.unsafe`
          UPDATE patch_deployment_systems s SET checked_at = now(),
            status = CASE WHEN v.bad = '' THEN s.status ELSE 'failed' END,
            message = CASE WHEN v.bad = '' THEN s.message ELSE 'services not active after the patch: ' || v.bad END
          FROM unnest(${sql.array(unchecked.map((r) => r.system_id), 'int4')}::int4[], ${sql.array(bad.map((b) => b.join(', ')), 'text')}::text[]) AS v(sid, bad)
          WHERE s.deployment_id = ${dep.id} AND s.system_id = v.sid`);
      }
      // Counters and the error threshold over the whole deployment.
      const all = await systemsOf(e, dep.id);
      const failed = all.filter((r) => r.status === 'failed');
      const succeeded = all.filter((r) => r.status === 'succeeded');
      await e.db.query(sql.unsafe`
        UPDATE patch_deployments SET systems_succeeded = ${succeeded.length}, systems_failed = ${failed.length}, failed_system_ids = ${sql.array(failed.map((r) => r.system_id), 'int4')}
        WHERE id = ${dep.id}`);
      const exceeded = thresholdExceeded(failed.length, dep.total_systems, policy);
      if (exceeded !== null) {
        await e.db.query(sql.unsafe`UPDATE patch_deployments SET status = 'halted', halt_reason = ${`wave ${input.waveIndex}: ${exceeded}`} WHERE id = ${dep.id}`);
        await enqueueAlert(e.db, { type: 'prod_failed', key: `${input.key}:halt`, errataId: dep.errata_id, queueId: dep.queue_id, subject: `Production deployment halted: ${dep.errata_id}`, body: `Deployment ${dep.id} of ${dep.errata_id} halted at wave ${input.waveIndex}: ${exceeded}.\nFailed systems: ${failed.map((r) => r.system_name).join(', ')}\nLater waves will not start. Roll back or retry from the dashboard or POST /api/v1/deployments/${dep.id}/rollback.` });
        return { outcome: 'halted', reason: exceeded };
      }
      if (input.waveIndex === waves.length - 1) {
        await e.db.query(sql.unsafe`UPDATE patch_deployments SET status = ${failed.length > 0 ? 'partial_failure' : 'completed'}, completed_at = now() WHERE id = ${dep.id}`);
      }
      return { outcome: 'ok', reason: null };
    },

    async verifyDeployment(input: Effects['verifyDeployment']['in']): Promise<Out<'verifyDeployment'>> {
      const dep = await deploymentOf(e, input.deploymentId);
      const rows = (await systemsOf(e, dep.id)).filter((r) => r.status === 'succeeded');
      if (rows.length === 0) return { ok: true, reason: null };
      const t = await loadThresholds(e.db);
      const facts = await errataFacts(e, dep.errata_id);
      const services = await servicesFor(e.db, facts.target_os);
      const post = await collectEvidence(e, rows.map((r) => r.system_name), services, timing(t).windowS);
      const bad: string[] = [];
      let unknown = 0;
      for (const r of rows) {
        const ev = post.get(r.system_name)!;
        const v = judge({ ...ev, cpuPercent: null, memoryPercent: null, services: Object.fromEntries(services.map((s) => [s, true])) }, ev, t);
        if (v.verdict === 'fail') bad.push(`${r.system_name}: ${v.failedServices.join(', ')}`);
        if (v.verdict === 'inconclusive') unknown++;
      }
      if (bad.length > 0) return { ok: false, reason: `services not active on ${bad.length} system(s): ${bad.slice(0, 5).join('; ')}` };
      if (unknown === rows.length) throw new TransientError('post-deployment checks: no evidence (Prometheus and Salt unavailable)');
      return { ok: true, reason: null };
    },
  };
}
