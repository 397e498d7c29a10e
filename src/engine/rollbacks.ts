/**
 * Operator rollbacks of a production deployment (design §12 L7): package level (the versions
 * recorded before the wave are reinstalled) or system level (snapper rollback to the pre-wave
 * snapshot, then one reboot per system), on all or selected systems. Resumable: systems already
 * rolled back are skipped, a snapshot already restored is not restored again, a reboot is not repeated.
 */
import { TransientError } from '../machines/effects.ts';
import type { EffectOut, Effects } from '../machines/patch.machine.ts';
import {
  finishProductionRollback,
  insertProductionRollback,
  markRollbackRebootRequested,
  markSystemsRollbackFailed,
  markSystemsRolledBack,
  recordDeploymentRollback,
} from '../persistence/sql/rollbacks.ts';
import type { DeploymentSystemRow } from '../persistence/sql/rollout.ts';
import { enqueueAlert } from '../services/alerts.ts';
import { loadThresholds } from '../services/settings.ts';
import { saltCall, type EngineDeps } from './deps.ts';
import { restorePackages } from './packages.ts';
import { rebootOnce } from './reboots.ts';
import { deploymentOf, systemsOf } from './rollout.ts';
import { timing } from './timing.ts';

type Failure = { system: string; message: string };

/** Reinstall the versions recorded before the wave; returns the systems that could not be restored. */
async function rollBackPackages(e: EngineDeps, deploymentId: number, todo: DeploymentSystemRow[]): Promise<Failure[]> {
  const failures: Failure[] = [];
  const before = new Map<string, Record<string, string>>();
  for (const r of todo) {
    if (r.packages_before === null) {
      failures.push({ system: r.system_name, message: 'no package versions were recorded before the wave' });
    } else before.set(r.system_name, r.packages_before as Record<string, string>);
  }
  const res = await restorePackages(e, before);
  for (const f of res.failed) failures.push({ system: f.minion, message: f.message });
  await markSystemsRolledBack(e.db, deploymentId, res.restored);
  return failures;
}

/** snapper rollback to the pre-wave snapshot and one reboot into it; returns the systems that failed. */
async function rollBackSystems(
  e: EngineDeps,
  deploymentId: number,
  todo: DeploymentSystemRow[],
  signal: AbortSignal,
): Promise<Failure[]> {
  const failures: Failure[] = [];
  const { pollMs } = timing(await loadThresholds(e.db));
  const withSnap = todo.filter((r) => r.snapshot_id !== null);
  for (const r of todo) {
    if (r.snapshot_id === null)
      failures.push({ system: r.system_name, message: 'no snapshot was taken before the wave' });
  }
  const list =
    withSnap.length > 0
      ? await saltCall(() => e.salt.listSnapshots(withSnap.map((r) => r.system_name)))
      : { returned: {}, missing: [] as string[] };
  const reboot: string[] = [];
  for (const r of withSnap) {
    if (list.missing.includes(r.system_name)) {
      failures.push({ system: r.system_name, message: 'not responding' });
      continue;
    }
    const snapshots = (list.returned as Record<string, { description?: string | undefined }[]>)[r.system_name]!;
    const done = snapshots.some((s) => s.description === `writable copy of #${r.snapshot_id}`);
    if (!done) {
      const cmd = `snapper -c root rollback ${Number(r.snapshot_id)}`;
      const out = await saltCall(() => e.salt.local<string>([r.system_name], 'cmd.run', [cmd]));
      if (!/read-write snapshot|writable copy/i.test(String(out.returned[r.system_name] ?? ''))) {
        const said = String(out.returned[r.system_name] ?? 'no answer').slice(0, 200);
        failures.push({ system: r.system_name, message: `snapper rollback failed: ${said}` });
        continue;
      }
    }
    reboot.push(r.system_name);
  }
  if (reboot.length > 0) {
    // The snapshot takes effect at the next boot: one reboot per system, across crashes.
    const t = await loadThresholds(e.db);
    const record = (names: string[]) => markRollbackRebootRequested(e.db, deploymentId, names).then(() => undefined);
    const rebooting = new Set(reboot);
    const hosts = withSnap
      .filter((r) => rebooting.has(r.system_name))
      .map((r) => ({ name: r.system_name, requestedAt: r.rollback_reboot_at }));
    const { unitMs } = timing(t);
    const { back, lost } = await rebootOnce(
      e,
      hosts,
      record,
      { pollMs, deadlineMs: t.reboot_timeout_seconds * unitMs, graceMs: 60 * unitMs },
      signal,
    );
    for (const m of lost) failures.push({ system: m, message: 'did not come back after the rollback reboot' });
    await markSystemsRolledBack(e.db, deploymentId, back);
  }
  return failures;
}

/** The operator rollback effect. @example const ports = { ...rollbackPorts(e) }; */
export function rollbackPorts(e: EngineDeps) {
  return {
    async rollbackProduction(
      input: Effects['rollbackProduction']['in'],
      signal: AbortSignal,
    ): Promise<EffectOut<'rollbackProduction'>> {
      if (input.deploymentId === null) throw new Error('no deployment to roll back');
      const dep = await deploymentOf(e, input.deploymentId);
      const all = await systemsOf(e, dep.id);
      // Sets, not includes/some per system: both lists can be 100,000 long (linear, not quadratic).
      const wanted = input.systems === null ? null : new Set(input.systems);
      const present = new Set(all.map((r) => r.system_id));
      const chosen =
        wanted === null
          ? all.filter((r) => ['succeeded', 'failed', 'rollback_failed'].includes(r.status))
          : all.filter((r) => wanted.has(r.system_id));
      const unknown = input.systems === null ? [] : input.systems.filter((s) => !present.has(s));
      if (unknown.length > 0) throw new Error(`systems not in deployment ${dep.id}: ${unknown.join(', ')}`);
      await insertProductionRollback(e.db, {
        deploymentId: dep.id,
        queueId: dep.queue_id,
        errataId: dep.errata_id,
        type: input.rollbackType,
        systemIds: chosen.map((r) => r.system_id),
        reason: input.reason,
        key: input.key,
      });
      await enqueueAlert(e.db, {
        type: 'rollback_initiated',
        key: `${input.key}:start`,
        errataId: dep.errata_id,
        queueId: dep.queue_id,
        subject: `Rollback started: ${dep.errata_id}`,
        body: `${input.rollbackType} rollback of deployment ${dep.id} on ${chosen.length} system(s): ${input.reason}`,
      });
      const todo = chosen.filter((r) => r.status !== 'rolled_back');
      const failures =
        input.rollbackType === 'package'
          ? await rollBackPackages(e, dep.id, todo)
          : await rollBackSystems(e, dep.id, todo, signal);
      if (failures.length > 0) {
        await markSystemsRollbackFailed(
          e.db,
          dep.id,
          failures.map((f) => f.system),
        );
      }
      const ok = chosen.length - failures.length;
      // Only unreachable systems: the rollback is retried (same key) and the row stays in progress.
      const retryable = failures.length > 0 && failures.every((f) => f.message === 'not responding');
      await finishProductionRollback(e.db, input.key, { retryable, succeeded: ok, failures });
      // The deployment is rolled back when no system is left with the errata applied; a rollback of
      // selected systems keeps its status (and says a rollback was performed).
      await recordDeploymentRollback(e.db, dep.id, {
        type: input.rollbackType,
        failed: failures.length > 0 && !retryable,
      });
      const detail = failures.length ? `\n${failures.map((f) => `${f.system}: ${f.message}`).join('\n')}` : '';
      await enqueueAlert(e.db, {
        type: 'rollback_completed',
        key: `${input.key}:done`,
        errataId: dep.errata_id,
        queueId: dep.queue_id,
        subject: `Rollback ${failures.length > 0 ? 'FAILED on some systems' : 'completed'}: ${dep.errata_id}`,
        body:
          `${input.rollbackType} rollback of deployment ${dep.id}: ${ok} system(s) rolled back, ` +
          `${failures.length} failed.${detail}`,
      });
      if (failures.length > 0) {
        const shown = failures
          .slice(0, 5)
          .map((f) => `${f.system}: ${f.message}`)
          .join('; ');
        const msg = `rollback failed on ${failures.length} system(s): ${shown}`;
        throw retryable ? new TransientError(msg) : new Error(msg);
      }
      return {};
    },
  };
}
