/**
 * After a sync: queue what the auto-queue policy (`orchestrator_config.auto_queue_policy`) asks for
 * — new errata of the configured advisory types — and re-queue errata whose version changed when
 * their last entry ended failed (rolled back) or rejected (design §5 "auto-retry new version").
 */
import { coerceError } from '../errors.ts';
import {
  listEntriesAwaitingProduction,
  listErrataLastRolledBackOrRejected,
  listErrataOfAdvisoryTypes,
} from '../persistence/sql/autoQueue.ts';
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
): Promise<{ queued: number; requeued: number; voided: number }> {
  // An approval is bound to the errata it approved: whatever the auto-queue policy, a changed
  // errata sends its approved (or awaiting-approval) entries back to the approvers.
  const voided = report.versionChanged.length > 0 ? await voidApprovalsOfChangedErrata(deps, report.versionChanged) : 0;
  const policy = await loadAutoQueuePolicy(deps.db);
  if (!policy.enabled) return { queued: 0, requeued: 0, voided };
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
  return { queued, requeued, voided };
}

/**
 * Send ERRATA_CHANGED to every entry of these errata that holds an approval production has not
 * acted on: the machine voids it and notifies the approvers again. An entry that moved on
 * meanwhile (its state no longer accepts the event) is left as it is.
 */
export async function voidApprovalsOfChangedErrata(deps: QueueServiceDeps, errataIds: string[]): Promise<number> {
  let voided = 0;
  for (const e of await listEntriesAwaitingProduction(deps.db, errataIds)) {
    const reason = `errata ${e.errata_id} changed in UYUNI since it was approved (version ${e.errata_version ?? '?'} → ${e.new_version ?? '?'})`;
    try {
      await deps.actors.send(e.id, { type: 'ERRATA_CHANGED', by: 'sync', reason }, { actor: 'sync' });
      voided++;
      deps.logger.warn({ entryId: e.id, errata: e.errata_id }, reason);
    } catch (raw) {
      deps.logger.info(
        { entryId: e.id, err: coerceError(raw).message },
        'changed errata: the entry moved on; approval left as it is',
      );
    }
  }
  return voided;
}
