/**
 * After a sync: queue what the auto-queue policy (`orchestrator_config.auto_queue_policy`) asks for
 * — new errata of the configured advisory types — and re-queue errata whose version changed when
 * their last entry ended failed (rolled back) or rejected (design §5 "auto-retry new version").
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { queueErrata, type QueueServiceDeps } from '../services/queue.ts';
import { loadAutoQueuePolicy } from '../services/settings.ts';
import type { SyncReport } from '../services/uyuni/sync.ts';

export async function autoQueueAfterSync(deps: QueueServiceDeps, report: SyncReport): Promise<{ queued: number; requeued: number }> {
  const policy = await loadAutoQueuePolicy(deps.db);
  if (!policy.enabled) return { queued: 0, requeued: 0 };
  const meta = { actor: 'auto-queue' };
  let queued = 0;
  if (report.newErrata.length > 0) {
    const wanted = await deps.db.anyFirst(sql.type(z.object({ id: z.string() }))`
      SELECT errata_id AS id FROM errata_cache WHERE errata_id = ANY(${sql.array(report.newErrata, 'text')}) AND advisory_type = ANY(${sql.array(policy.advisory_types, 'text')})
      ORDER BY errata_id`);
    queued = (await queueErrata(deps, [...wanted], { priority: 0, notes: 'auto-queued after sync' }, meta)).filter((r) => r.queued).length;
  }
  let requeued = 0;
  if (policy.requeue_new_versions && report.versionChanged.length > 0) {
    const ended = await deps.db.anyFirst(sql.type(z.object({ id: z.string() }))`
      SELECT errata_id AS id FROM (
        SELECT DISTINCT ON (errata_id) errata_id, status FROM patch_test_queue
        WHERE errata_id = ANY(${sql.array(report.versionChanged, 'text')}) ORDER BY errata_id, id DESC) last
      WHERE status IN ('rolled_back', 'rejected')`);
    requeued = (await queueErrata(deps, [...ended], { priority: 0, notes: 'new errata version after a failed or rejected one' }, meta)).filter((r) => r.queued).length;
  }
  return { queued, requeued };
}
