/**
 * After a sync: queue what the auto-queue policy (`orchestrator_config.auto_queue_policy`) asks for
 * — new errata of the configured advisory types — and re-queue errata whose version changed when
 * their last entry ended failed (rolled back) or rejected (design §5 "auto-retry new version").
 */
import { listErrataLastRolledBackOrRejected, listErrataOfAdvisoryTypes } from '../persistence/sql/autoQueue.ts';
import { queueErrata, type QueueServiceDeps } from '../services/queue.ts';
import { loadAutoQueuePolicy } from '../services/settings.ts';
import type { SyncReport } from '../services/uyuni/sync.ts';

/**
 * Queue and re-queue after a sync report; returns how many entries each added.
 * @example const { queued, requeued } = await autoQueueAfterSync(deps, report);
 */
export async function autoQueueAfterSync(
  deps: QueueServiceDeps,
  report: SyncReport,
): Promise<{ queued: number; requeued: number }> {
  const policy = await loadAutoQueuePolicy(deps.db);
  if (!policy.enabled) return { queued: 0, requeued: 0 };
  const meta = { actor: 'auto-queue' };
  let queued = 0;
  if (report.newErrata.length > 0) {
    const wanted = await listErrataOfAdvisoryTypes(deps.db, report.newErrata, policy.advisory_types);
    const r = await queueErrata(deps, [...wanted], { priority: 0, notes: 'auto-queued after sync' }, meta);
    queued = r.filter((x) => x.queued).length;
  }
  let requeued = 0;
  if (policy.requeue_new_versions && report.versionChanged.length > 0) {
    const ended = await listErrataLastRolledBackOrRejected(deps.db, report.versionChanged);
    const notes = 'new errata version after a failed or rejected one';
    requeued = (await queueErrata(deps, [...ended], { priority: 0, notes }, meta)).filter((x) => x.queued).length;
  }
  return { queued, requeued };
}
