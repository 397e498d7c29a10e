/**
 * What the API reads about production deployments, their systems and rollbacks, and the rollback
 * job it files for a deployment whose entry already completed. The rollout's own writes are in
 * `rollout.ts` and `rollbacks.ts`; rows here are returned whole (`SELECT *`), as the API shows them.
 */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const wholeRow = z.object({}).passthrough();
const systemId = z.object({ system_id: z.number() });

/** A whole `patch_deployments` row; the fields the services read are typed. */
export type DeploymentRecord = Record<string, unknown> & {
  queue_id: number;
  waves: { group: string }[];
  current_wave?: unknown;
};

/**
 * A deployment row (every column), or null.
 * @example
 * const d = await findDeployment(db, 3);
 */
export async function findDeployment(db: Db, id: number): Promise<DeploymentRecord | null> {
  return (await db.maybeOne(
    sql.type(wholeRow)`SELECT * FROM patch_deployments WHERE id = ${id}`,
  )) as DeploymentRecord | null;
}

/** Filters of `GET /deployments`. */
export interface DeploymentFilters {
  status?: string | undefined;
  errata_id?: string | undefined;
  limit: number;
  offset: number;
}

/**
 * One page of deployments, newest first, and how many match.
 * @example
 * const { items, total } = await listDeployments(db, { status: 'halted', limit: 100, offset: 0 });
 */
export async function listDeployments(db: Db, f: DeploymentFilters) {
  const status = f.status ?? null;
  const errataId = f.errata_id ?? null;
  const where = sql.fragment`WHERE (${status}::text IS NULL OR status = ${status})
    AND (${errataId}::text IS NULL OR errata_id = ${errataId})`;
  const items = await db.any(sql.type(wholeRow)`
    SELECT * FROM patch_deployments ${where} ORDER BY id DESC LIMIT ${f.limit} OFFSET ${f.offset}`);
  const total = await db.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_deployments ${where}`,
  );
  return { items, total };
}

/**
 * A deployment's systems (every column), by wave and system id.
 * @example
 * const systems = await listSystemsOfDeployment(db, 3);
 */
export function listSystemsOfDeployment(db: Db, deploymentId: number) {
  return db.any(sql.type(wholeRow)`
    SELECT * FROM patch_deployment_systems WHERE deployment_id = ${deploymentId} ORDER BY wave, system_id`);
}

/**
 * A deployment's rollbacks (every column), oldest first.
 * @example
 * const rollbacks = await listRollbacksOfDeployment(db, 3);
 */
export function listRollbacksOfDeployment(db: Db, deploymentId: number) {
  return db.any(sql.type(wholeRow)`SELECT * FROM patch_rollbacks WHERE deployment_id = ${deploymentId} ORDER BY id`);
}

/**
 * A rollback row (every column), or null.
 * @example
 * const r = await findRollback(db, 7);
 */
export function findRollback(db: Db, id: number) {
  return db.maybeOne(sql.type(wholeRow)`SELECT * FROM patch_rollbacks WHERE id = ${id}`);
}

/** The entry fields that decide which deployment request it accepts. */
export const deploymentEntry = z.object({
  id: z.number(),
  status: z.string(),
  state_value: z.unknown(),
  attention_phase: z.string().nullable(),
});
export type DeploymentEntry = z.infer<typeof deploymentEntry>;

/**
 * The state of a deployment's entry: which operator event it accepts depends on it.
 * @example
 * const entry = await readDeploymentEntry(db, d.queue_id);
 */
export function readDeploymentEntry(db: Db, queueId: number): Promise<DeploymentEntry> {
  // attention_phase tells a halted or failed deployment (prod, prod_rollback) from a test-phase attention.
  return db.one(sql.type(deploymentEntry)`
    SELECT id, status, state_value, snapshot->'context'->'attention'->>'phase' AS attention_phase
    FROM patch_test_queue WHERE id = ${queueId}`);
}

/**
 * Which of the given systems belong to the deployment.
 * @example
 * await findSystemsOfDeployment(db, 3, [11, 99]); // [11]
 */
export function findSystemsOfDeployment(db: Db, deploymentId: number, systems: number[]): Promise<readonly number[]> {
  return db.anyFirst(sql.type(systemId)`
    SELECT system_id FROM patch_deployment_systems
    WHERE deployment_id = ${deploymentId} AND system_id = ANY(${sql.array(systems, 'int4')})`);
}

/**
 * The systems a deployment changed (applied, failed or failed to roll back): what "roll back all" means.
 * @example
 * const systems = await listAppliedSystems(db, 3);
 */
export function listAppliedSystems(db: Db, deploymentId: number): Promise<readonly number[]> {
  return db.anyFirst(sql.type(systemId)`
    SELECT system_id FROM patch_deployment_systems
    WHERE deployment_id = ${deploymentId} AND status IN ('succeeded', 'failed', 'rollback_failed') ORDER BY system_id`);
}

/**
 * The id of the deployment's rollback still running, or null.
 * @example
 * const running = await findRunningRollback(db, 3);
 */
export function findRunningRollback(db: Db, deploymentId: number): Promise<number | null> {
  return db.maybeOneFirst(sql.type(z.object({ id: z.number() }))`
    SELECT id FROM patch_rollbacks WHERE deployment_id = ${deploymentId} AND status = 'in_progress' LIMIT 1`);
}

/**
 * The deployment's errata and how many rollbacks it had: the next job's effect key is `rb:<id>:<n + 1>`.
 * @example
 * const { errata_id, n } = await readRollbackNumbering(db, 3);
 */
export function readRollbackNumbering(db: Db, deploymentId: number) {
  return db.one(sql.type(z.object({ errata_id: z.string(), n: z.number() }))`
    SELECT errata_id, (SELECT count(*)::int FROM patch_rollbacks WHERE deployment_id = ${deploymentId}) AS n
    FROM patch_deployments WHERE id = ${deploymentId}`);
}

/** A rollback job to file for a completed deployment. */
export interface RollbackJobRequest {
  deploymentId: number;
  queueId: number;
  errataId: string;
  type: 'package' | 'system';
  systems: readonly number[];
  reason: string;
  initiatedBy: string;
  effectKey: string;
}

/**
 * File the rollback of a completed deployment as a durable job (`in_progress`); the rollback
 * runner picks it up by its `rb:` effect key and resumes it after a crash.
 * @example
 * const id = await insertRollbackJob(db, {
 *   deploymentId: 3, queueId: 9, errataId, type: 'package', systems, reason, initiatedBy, effectKey: 'rb:3:1',
 * });
 */
export function insertRollbackJob(db: Db | DatabaseTransactionConnection, r: RollbackJobRequest): Promise<number> {
  return db.oneFirst(sql.type(z.object({ id: z.number() }))`
    INSERT INTO patch_rollbacks
      (deployment_id, queue_id, errata_id, rollback_type, target_systems, reason, initiated_by, effect_key)
    VALUES (${r.deploymentId}, ${r.queueId}, ${r.errataId}, ${r.type}, ${sql.array([...r.systems], 'int4')},
            ${r.reason}, ${r.initiatedBy}, ${r.effectKey})
    RETURNING id`);
}

/** Filters of `GET /notifications`. */
export interface NotificationFilters {
  status?: string | undefined;
  limit: number;
}

/**
 * The newest notifications (without their bodies), optionally of one delivery status.
 * @example
 * const items = await listNotifications(db, { status: 'failed', limit: 100 });
 */
export function listNotifications(db: Db, f: NotificationFilters) {
  const status = f.status ?? null;
  return db.any(sql.type(wholeRow)`
    SELECT id, type, errata_id, queue_id, recipient, channel, subject, status, attempts, created_at, sent_at,
           error_message
    FROM orchestrator_notifications WHERE (${status}::text IS NULL OR status = ${status})
    ORDER BY id DESC LIMIT ${f.limit}`);
}
