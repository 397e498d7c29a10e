/**
 * Queries of rollbacks: `patch_rollbacks` (one row per rollback, unique by effect key, so a re-run
 * adds nothing; rows keyed `rb:…` are the durable jobs of deployments whose entry completed) and
 * what an operator rollback writes on the deployment and its systems.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/**
 * @example await insertTestRollback(db, { testId, queueId: 7, errataId, type: 'package', systemId: 1001, reason, key
 * });
 */
export function insertTestRollback(
  db: Db,
  r: {
    testId: number;
    queueId: number;
    errataId: string;
    type: 'package' | 'system';
    systemId: number;
    reason: string;
    key: string;
  },
) {
  return db.query(sql.unsafe`
    INSERT INTO patch_rollbacks (test_id, queue_id, errata_id, rollback_type, target_systems, reason, initiated_by,
      effect_key)
    VALUES (${r.testId}, ${r.queueId}, ${r.errataId}, ${r.type}, ${sql.array([r.systemId], 'int4')}, ${r.reason},
      'orchestrator', ${r.key})
    ON CONFLICT (effect_key) DO NOTHING`);
}

/** The test system's rollback failed for good (a transient failure leaves the row as it is). */
export function failTestRollback(db: Db, key: string, message: string) {
  return db.query(sql.unsafe`
    UPDATE patch_rollbacks SET status = 'failed', completed_at = now(), systems_failed = 1,
      error_details = ${sql.jsonb({ message })}
    WHERE effect_key = ${key}`);
}

/** @example await completeTestRollback(db, '7:1:rollback_test'); */
export function completeTestRollback(db: Db, key: string) {
  return db.query(sql.unsafe`
    UPDATE patch_rollbacks SET status = 'completed', completed_at = now(), systems_succeeded = 1
      WHERE effect_key = ${key}`);
}

/**
 * @example await insertProductionRollback(db, { deploymentId: 3, queueId: 7, errataId, type: 'package', systemIds,
 * reason, key });
 */
export function insertProductionRollback(
  db: Db,
  r: {
    deploymentId: number;
    queueId: number;
    errataId: string;
    type: 'package' | 'system';
    systemIds: number[];
    reason: string;
    key: string;
  },
) {
  return db.query(sql.unsafe`
    INSERT INTO patch_rollbacks (deployment_id, queue_id, errata_id, rollback_type, target_systems, reason,
      initiated_by, effect_key)
    VALUES (${r.deploymentId}, ${r.queueId}, ${r.errataId}, ${r.type}, ${sql.array(r.systemIds, 'int4')}, ${r.reason},
      'operator', ${r.key})
    ON CONFLICT (effect_key) DO NOTHING`);
}

/**
 * The outcome of a production rollback. `retryable` (only unreachable systems failed): the row
 * stays `in_progress`, without an end, and the same key runs again.
 * @example await finishProductionRollback(db, key, { retryable: false, succeeded: 4, failures: [] });
 */
export function finishProductionRollback(
  db: Db,
  key: string,
  r: { retryable: boolean; succeeded: number; failures: { system: string; message: string }[] },
) {
  const failed = r.failures.length > 0;
  return db.query(sql.unsafe`
    UPDATE patch_rollbacks SET status = ${r.retryable ? 'in_progress' : failed ? 'failed' : 'completed'},
      completed_at = ${r.retryable ? null : sql.fragment`now()`},
      systems_succeeded = ${r.succeeded}, systems_failed = ${r.failures.length},
      error_details = ${failed ? sql.jsonb(r.failures as never) : null}
    WHERE effect_key = ${key}`);
}

/** @example await markSystemsRolledBack(db, 3, ['web-1']); */
export function markSystemsRolledBack(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET status = 'rolled_back'
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/** Written before Salt is asked to reboot into the restored snapshot (one reboot per system, across crashes). */
export function markRollbackRebootRequested(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET rollback_reboot_at = now()
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/** @example await markSystemsRollbackFailed(db, 3, ['web-2']); */
export function markSystemsRollbackFailed(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET status = 'rollback_failed', message = 'rollback failed'
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/**
 * Say a rollback was performed on the deployment. It is `rolled_back` when no system is left with
 * the errata applied; a rollback of selected systems keeps its status; `failed` on a permanent failure.
 * @example await recordDeploymentRollback(db, 3, { type: 'package', failed: false });
 */
export function recordDeploymentRollback(db: Db, id: number, r: { type: 'package' | 'system'; failed: boolean }) {
  return db.query(sql.unsafe`
    UPDATE patch_deployments d SET rollback_performed = true, rollback_type = ${r.type}, rollback_at = now(),
      status = CASE WHEN ${r.failed} THEN 'failed'
                    WHEN NOT EXISTS (SELECT 1 FROM patch_deployment_systems s
                                     WHERE s.deployment_id = d.id
                                       AND s.status IN ('succeeded', 'failed', 'rollback_failed'))
                      THEN 'rolled_back'
                    ELSE d.status END
    WHERE id = ${id}`);
}

const jobRow = z.object({
  id: z.number(),
  deployment_id: z.number(),
  queue_id: z.number(),
  errata_id: z.string(),
  target_os: z.string(),
  rollback_type: z.enum(['package', 'system']),
  target_systems: z.array(z.number()),
  reason: z.string().nullable(),
  effect_key: z.string(),
});
export type RollbackJob = z.infer<typeof jobRow>;

/**
 * The rollbacks of completed deployments still to run: inserted by the API with a `rb:` key (an
 * entry's own rollbacks run in its actor and are not jobs), oldest first.
 * @example for (const j of await listRollbackJobs(db)) { … }
 */
export function listRollbackJobs(db: Db) {
  return db.any(sql.type(jobRow)`
    SELECT r.id, r.deployment_id, r.queue_id, r.errata_id, q.target_os, r.rollback_type, r.target_systems, r.reason,
      r.effect_key
    FROM patch_rollbacks r JOIN patch_test_queue q ON q.id = r.queue_id
    WHERE r.status = 'in_progress' AND r.effect_key LIKE 'rb:%' AND r.deployment_id IS NOT NULL ORDER BY r.id`);
}

/** A job that failed for good; the rollback's own error details, when it wrote them, are kept. */
export function failRollbackJob(db: Db, id: number, message: string) {
  return db.query(sql.unsafe`
    UPDATE patch_rollbacks
    SET status = 'failed', completed_at = now(), error_details = coalesce(error_details, ${sql.jsonb({ message })})
    WHERE id = ${id} AND status = 'in_progress'`);
}
