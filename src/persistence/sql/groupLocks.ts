/**
 * Production group locks: a deployment takes all its production groups or none, why it waits, and
 * what an entry's production waits for (tables `production_group_locks`, `patch_deployments.wait_reason`).
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const lockHolder = z.object({
  group_name: z.string(),
  deployment_id: z.number(),
  queue_id: z.number(),
  errata_id: z.string(),
  acquired_at: z.number(),
});
export type GroupLockHolder = z.infer<typeof lockHolder>;

/** Thrown inside the transaction so that the groups already taken are given back. */
class GroupsBusy extends Error {
  readonly holders: readonly GroupLockHolder[];
  constructor(holders: readonly GroupLockHolder[]) {
    super('production groups busy');
    this.holders = holders;
  }
}

/**
 * Take every production group of a deployment, all or none (one transaction; groups in name order,
 * so two deployments never wait on each other). The primary key of `production_group_locks` is the
 * rule: a group held by another entry's deployment is not taken. A newer deployment of the same
 * entry (a later production attempt) takes its groups over.
 * @returns null when taken, else the holders of the groups that are busy
 * @example const busy = await acquireGroupLocks(db, { deploymentId: 3, queueId: 7, errataId: 'RHSA-1', groups: ['prod-web'] });
 */
export async function acquireGroupLocks(
  db: Db,
  d: { deploymentId: number; queueId: number; errataId: string; groups: string[] },
): Promise<readonly GroupLockHolder[] | null> {
  const groups = [...new Set(d.groups)].sort();
  if (groups.length === 0) return null;
  return db
    .transaction(async (tx) => {
      const taken = await tx.anyFirst(sql.type(z.object({ group_name: z.string() }))`
      INSERT INTO production_group_locks (group_name, deployment_id, queue_id, errata_id)
      SELECT g, ${d.deploymentId}, ${d.queueId}, ${d.errataId} FROM unnest(${sql.array(groups, 'text')}::text[]) WITH ORDINALITY AS t(g, i)
      ORDER BY i
      ON CONFLICT (group_name) DO UPDATE SET deployment_id = excluded.deployment_id, acquired_at = now()
        WHERE production_group_locks.queue_id = excluded.queue_id
      RETURNING group_name`);
      if (taken.length === groups.length) {
        await tx.query(
          sql.unsafe`UPDATE patch_deployments SET wait_reason = NULL WHERE id = ${d.deploymentId} AND wait_reason IS NOT NULL`,
        );
        return null;
      }
      // All or none: undo what was taken, and say who holds the rest.
      const busy = await tx.any(sql.type(lockHolder)`
      SELECT group_name, deployment_id, queue_id, errata_id, acquired_at FROM production_group_locks
      WHERE group_name = ANY(${sql.array(groups, 'text')}) AND queue_id <> ${d.queueId} ORDER BY group_name`);
      throw new GroupsBusy(busy);
    })
    .catch((raw) => {
      if (raw instanceof GroupsBusy) return raw.holders;
      throw raw;
    });
}

/**
 * Why a deployment waits (shown by GET /queue/{id}, GET /deployments/{id} and the dashboard).
 * @example await setDeploymentWaitReason(db, 4, 'waiting for production group prod-web: …');
 */
export function setDeploymentWaitReason(db: Db, id: number, reason: string | null) {
  return db.query(
    sql.unsafe`UPDATE patch_deployments SET wait_reason = ${reason} WHERE id = ${id} AND wait_reason IS DISTINCT FROM ${reason}`,
  );
}

/**
 * Give back the groups of a deployment that has not touched a system yet (its window closed
 * before its first wave): it is not in progress, another may go first.
 * @example await releaseUnstartedGroupLocks(db, 4);
 */
export function releaseUnstartedGroupLocks(db: Db, deploymentId: number) {
  return db.query(sql.unsafe`
    DELETE FROM production_group_locks l WHERE l.deployment_id = ${deploymentId}
      AND NOT EXISTS (SELECT 1 FROM patch_deployment_systems s WHERE s.deployment_id = ${deploymentId} AND s.status <> 'pending')`);
}

/**
 * What an entry's production waits for: its newest deployment's wait reason and the groups it holds.
 * @example await productionLockOf(db, 7) // { deployment_id: 4, wait_reason: 'waiting for …', holds: ['prod-web'] }
 */
export function productionLockOf(db: Db, queueId: number) {
  return db.maybeOne(sql.type(
    z.object({ deployment_id: z.number(), wait_reason: z.string().nullable(), holds: z.array(z.string()) }),
  )`
    SELECT d.id AS deployment_id, d.wait_reason,
           coalesce((SELECT array_agg(l.group_name ORDER BY l.group_name) FROM production_group_locks l WHERE l.queue_id = ${queueId}), '{}') AS holds
    FROM patch_deployments d WHERE d.queue_id = ${queueId} ORDER BY d.id DESC LIMIT 1`);
}

/**
 * The production groups a deployment rolls out to (its planned waves).
 * @example await deploymentGroups(db, 4) // ['prod-db', 'prod-web']
 */
export function deploymentGroups(db: Db, deploymentId: number) {
  return db.anyFirst(sql.type(z.object({ g: z.string() }))`
    SELECT DISTINCT w->>'group' AS g FROM patch_deployments d, jsonb_array_elements(d.waves) w
    WHERE d.id = ${deploymentId} AND w->>'group' IS NOT NULL ORDER BY 1`);
}

/**
 * Give back the groups a deployment holds (the rollback of a completed deployment, once it ended:
 * no status change of its entry releases them, that entry is final already).
 * @example await releaseGroupLocksOfDeployment(db, 4);
 */
export function releaseGroupLocksOfDeployment(db: Db, deploymentId: number) {
  return db.query(sql.unsafe`DELETE FROM production_group_locks WHERE deployment_id = ${deploymentId}`);
}

/** Why a rollback job waits (null: it does not). @example await setRollbackWaitReason(db, 9, 'waiting for …'); */
export function setRollbackWaitReason(db: Db, rollbackId: number, reason: string | null) {
  return db.query(
    sql.unsafe`UPDATE patch_rollbacks SET wait_reason = ${reason} WHERE id = ${rollbackId} AND wait_reason IS DISTINCT FROM ${reason}`,
  );
}
