/**
 * Operator rollbacks of a production deployment (design §12 L7): package level (the versions
 * recorded before the wave are reinstalled) or system level (snapper rollback to the pre-wave
 * snapshot, then one reboot per system), on all or selected systems. Resumable: systems already
 * rolled back are skipped, a snapshot already restored is not restored again, a reboot is not repeated.
 */
import { sql } from 'slonik';
import { TransientError } from '../machines/effects.ts';
import type { Effects } from '../machines/patch.machine.ts';
import { enqueueAlert } from '../services/engine/notifier.ts';
import { loadThresholds } from '../services/settings.ts';
import { saltCall, type EngineDeps } from './deps.ts';
import { restorePackages } from './packages.ts';
import { rebootOnce } from './reboots.ts';
import { deploymentOf, systemsOf } from './rollout.ts';
import { timing } from './timing.ts';

type Out<N extends keyof Effects> = Omit<Effects[N]['out'], 'at'>;

export function rollbackPorts(e: EngineDeps) {
  return {
    async rollbackProduction(input: Effects['rollbackProduction']['in'], signal: AbortSignal): Promise<Out<'rollbackProduction'>> {
      if (input.deploymentId === null) throw new Error('no deployment to roll back');
      const dep = await deploymentOf(e, input.deploymentId);
      const all = await systemsOf(e, dep.id);
      const chosen = input.systems === null ? all.filter((r) => ['succeeded', 'failed', 'rollback_failed'].includes(r.status)) : all.filter((r) => input.systems!.includes(r.system_id));
      const unknown = input.systems === null ? [] : input.systems.filter((s) => !all.some((r) => r.system_id === s));
      if (unknown.length > 0) throw new Error(`systems not in deployment ${dep.id}: ${unknown.join(', ')}`);
      await e.db.query(sql.unsafe`
        INSERT INTO patch_rollbacks (deployment_id, queue_id, errata_id, rollback_type, target_systems, reason, initiated_by, effect_key)
        VALUES (${dep.id}, ${dep.queue_id}, ${dep.errata_id}, ${input.rollbackType}, ${sql.array(chosen.map((r) => r.system_id), 'int4')}, ${input.reason}, 'operator', ${input.key})
        ON CONFLICT (effect_key) DO NOTHING`);
      await enqueueAlert(e.db, { type: 'rollback_initiated', key: `${input.key}:start`, errataId: dep.errata_id, queueId: dep.queue_id, subject: `Rollback started: ${dep.errata_id}`, body: `${input.rollbackType} rollback of deployment ${dep.id} on ${chosen.length} system(s): ${input.reason}` });
      const todo = chosen.filter((r) => r.status !== 'rolled_back');
      const failures: { system: string; message: string }[] = [];
      if (input.rollbackType === 'package') {
        const before = new Map<string, Record<string, string>>();
        for (const r of todo) {
          if (r.packages_before === null) failures.push({ system: r.system_name, message: 'no package versions were recorded before the wave' });
          else before.set(r.system_name, r.packages_before as Record<string, string>);
        }
        const res = await restorePackages(e, before);
        for (const f of res.failed) failures.push({ system: f.minion, message: f.message });
        await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET status = 'rolled_back' WHERE deployment_id = ${dep.id} AND system_name = ANY(${sql.array(res.restored, 'text')})`);
      } else {
        const { pollMs } = timing(await loadThresholds(e.db));
        const withSnap = todo.filter((r) => r.snapshot_id !== null);
        for (const r of todo) if (r.snapshot_id === null) failures.push({ system: r.system_name, message: 'no snapshot was taken before the wave' });
        const list = withSnap.length > 0 ? await saltCall(() => e.salt.listSnapshots(withSnap.map((r) => r.system_name))) : { returned: {}, missing: [] as string[] };
        const reboot: string[] = [];
        for (const r of withSnap) {
          if (list.missing.includes(r.system_name)) {
            failures.push({ system: r.system_name, message: 'not responding' });
            continue;
          }
          const done = (list.returned as Record<string, { description?: string | undefined }[]>)[r.system_name]!.some((s) => s.description === `writable copy of #${r.snapshot_id}`);
          if (!done) {
            const out = await saltCall(() => e.salt.local<string>([r.system_name], 'cmd.run', [`snapper -c root rollback ${Number(r.snapshot_id)}`]));
            if (!/read-write snapshot|writable copy/i.test(String(out.returned[r.system_name] ?? ''))) {
              failures.push({ system: r.system_name, message: `snapper rollback failed: ${String(out.returned[r.system_name] ?? 'no answer').slice(0, 200)}` });
              continue;
            }
          }
          reboot.push(r.system_name);
        }
        if (reboot.length > 0) {
          // The snapshot takes effect at the next boot: one reboot per system, across crashes.
          const t = await loadThresholds(e.db);
          const record = (names: string[]) => e.db.query(sql.unsafe`
            UPDATE patch_deployment_systems SET rollback_reboot_at = now() WHERE deployment_id = ${dep.id} AND system_name = ANY(${sql.array(names, 'text')})`).then(() => undefined);
          const hosts = withSnap.filter((r) => reboot.includes(r.system_name)).map((r) => ({ name: r.system_name, requestedAt: r.rollback_reboot_at }));
          const { back, lost } = await rebootOnce(e, hosts, record, { pollMs, deadlineMs: t.reboot_timeout_seconds * timing(t).unitMs, graceMs: 60 * timing(t).unitMs }, signal);
          for (const m of lost) failures.push({ system: m, message: 'did not come back after the rollback reboot' });
          await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET status = 'rolled_back' WHERE deployment_id = ${dep.id} AND system_name = ANY(${sql.array(back, 'text')})`);
        }
      }
      if (failures.length > 0) {
        await e.db.query(sql.unsafe`UPDATE patch_deployment_systems SET status = 'rollback_failed', message = 'rollback failed' WHERE deployment_id = ${dep.id} AND system_name = ANY(${sql.array(failures.map((f) => f.system), 'text')})`);
      }
      const ok = chosen.length - failures.length;
      // Only unreachable systems: the rollback is retried (same key) and the row stays in progress.
      const retryable = failures.length > 0 && failures.every((f) => f.message === 'not responding');
      await e.db.query(sql.unsafe`
        UPDATE patch_rollbacks SET status = ${retryable ? 'in_progress' : failures.length > 0 ? 'failed' : 'completed'}, completed_at = ${retryable ? null : sql.fragment`now()`},
          systems_succeeded = ${ok}, systems_failed = ${failures.length}, error_details = ${failures.length > 0 ? sql.jsonb(failures as never) : null}
        WHERE effect_key = ${input.key}`);
      // The deployment is rolled back when no system is left with the errata applied; a rollback of
      // selected systems keeps its status (and says a rollback was performed).
      await e.db.query(sql.unsafe`
        UPDATE patch_deployments d SET rollback_performed = true, rollback_type = ${input.rollbackType}, rollback_at = now(),
          status = CASE WHEN ${failures.length > 0 && !retryable} THEN 'failed'
                        WHEN NOT EXISTS (SELECT 1 FROM patch_deployment_systems s WHERE s.deployment_id = d.id AND s.status IN ('succeeded', 'failed', 'rollback_failed')) THEN 'rolled_back'
                        ELSE d.status END
        WHERE id = ${dep.id}`);
      await enqueueAlert(e.db, { type: 'rollback_completed', key: `${input.key}:done`, errataId: dep.errata_id, queueId: dep.queue_id, subject: `Rollback ${failures.length > 0 ? 'FAILED on some systems' : 'completed'}: ${dep.errata_id}`, body: `${input.rollbackType} rollback of deployment ${dep.id}: ${ok} system(s) rolled back, ${failures.length} failed.${failures.length ? `\n${failures.map((f) => `${f.system}: ${f.message}`).join('\n')}` : ''}` });
      if (failures.length > 0) {
        const msg = `rollback failed on ${failures.length} system(s): ${failures.slice(0, 5).map((f) => `${f.system}: ${f.message}`).join('; ')}`;
        throw retryable ? new TransientError(msg) : new Error(msg);
      }
      return {};
    },
  };
}
