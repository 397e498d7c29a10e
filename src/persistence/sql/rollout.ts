/**
 * Queries of the production rollout: `patch_deployments` (one plan per production attempt) and
 * `patch_deployment_systems` (one row per system, the record every wave stage resumes from).
 * The operator rollback's updates of these tables are in rollbacks.ts.
 */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const deploymentRow = z.object({
  id: z.number(),
  queue_id: z.number(),
  errata_id: z.string(),
  status: z.string(),
  waves: z.unknown(),
  total_systems: z.number(),
});
export type DeploymentRow = z.infer<typeof deploymentRow>;

const systemRow = z.object({
  system_id: z.number(),
  system_name: z.string(),
  wave: z.number(),
  status: z.string(),
  action_id: z.number().nullable(),
  packages_before: z.unknown().nullable(),
  snapshot_id: z.string().nullable(),
  group_name: z.string().nullable(),
  reboot_state: z.string().nullable(),
  reboot_requested_at: z.number().nullable(),
  checked_at: z.number().nullable(),
  rollback_reboot_at: z.number().nullable(),
});
export type DeploymentSystemRow = z.infer<typeof systemRow>;

/** @example const d = await getDeployment(db, 3); // null: no such deployment */
export function getDeployment(db: Db, id: number) {
  return db.maybeOne(sql.type(deploymentRow)`
    SELECT id, queue_id, errata_id, status, waves, total_systems FROM patch_deployments WHERE id = ${id}`);
}

/**
 * A deployment's systems (one wave's when `wave` is given), by system id; times as epoch ms.
 * @example const rows = await listDeploymentSystems(db, 3, 0);
 */
export function listDeploymentSystems(db: Db, id: number, wave?: number) {
  return db.any(sql.type(systemRow)`
    SELECT system_id, system_name, wave, status, action_id, packages_before, snapshot_id, group_name, reboot_state,
           (extract(epoch FROM reboot_requested_at) * 1000)::float8 AS reboot_requested_at,
           (extract(epoch FROM checked_at) * 1000)::float8 AS checked_at,
           (extract(epoch FROM rollback_reboot_at) * 1000)::float8 AS rollback_reboot_at
    FROM patch_deployment_systems
    WHERE deployment_id = ${id} ${wave === undefined ? sql.fragment`` : sql.fragment`AND wave = ${wave}`}
    ORDER BY system_id`);
}

/**
 * Every UYUNI action id a deployment recorded for a system (reconciliation must not take one of
 * them for the action a crashed run scheduled).
 * @example await listDeploymentActionIds(db, 2001) // [812, 840]
 */
export function listDeploymentActionIds(db: Db, systemId: number) {
  return db.anyFirst(sql.type(z.object({ action_id: z.number() }))`
    SELECT action_id FROM patch_deployment_systems WHERE system_id = ${systemId} AND action_id IS NOT NULL`);
}

const planRow = z.object({ id: z.number(), waves: z.unknown() });

/**
 * The plan of a production attempt, if it was made already (a re-run).
 * @example await findDeploymentByPlanKey(db, '7:p1')
 */
export function findDeploymentByPlanKey(db: Db, planKey: string) {
  return db.maybeOne(sql.type(planRow)`SELECT id, waves FROM patch_deployments WHERE plan_key = ${planKey}`);
}

/** The approval a deployment is made under (the latest). @example await getLatestApprovalId(db, 7) // 12 | null */
export function getLatestApprovalId(db: Db, queueId: number) {
  return db.maybeOneFirst(sql.type(z.object({ id: z.number() }))`
    SELECT id FROM patch_approvals WHERE queue_id = ${queueId} AND action = 'approved' ORDER BY id DESC LIMIT 1`);
}

/**
 * Insert a deployment plan (its waves as JSON); with {@link insertDeploymentSystems}, in one transaction.
 * @example
 * const d = await insertDeployment(tx, { queueId: 7, approvalId: 12, errataId, group: 'prod-web',
 *   systems, waves, planKey: '7:p1' });
 */
export function insertDeployment(
  tx: DatabaseTransactionConnection,
  d: {
    queueId: number;
    approvalId: number | null;
    errataId: string;
    group: string | null;
    systems: number[];
    waves: { index: number; group: string; systems: number[] }[];
    planKey: string;
  },
) {
  return tx.one(sql.type(planRow)`
    INSERT INTO patch_deployments (queue_id, approval_id, errata_id, target_group, target_systems, total_systems,
      status, waves, plan_key)
    VALUES (${d.queueId}, ${d.approvalId}, ${d.errataId}, ${d.group}, ${sql.array(d.systems, 'int4')},
            ${d.systems.length}, 'scheduled', ${sql.jsonb(d.waves as never)}, ${d.planKey})
    RETURNING id, waves`);
}

/**
 * One wave's system rows, `pending`.
 * @example await insertDeploymentSystems(tx, d.id, 0, 'prod-web', [2001], ['web-1']);
 */
export function insertDeploymentSystems(
  tx: DatabaseTransactionConnection,
  deploymentId: number,
  wave: number,
  group: string,
  systemIds: number[],
  names: string[],
) {
  return tx.query(sql.unsafe`
    INSERT INTO patch_deployment_systems (deployment_id, system_id, system_name, wave, group_name)
    SELECT ${deploymentId}, x, n, ${wave}, ${group}
    FROM unnest(${sql.array(systemIds, 'int4')}::int4[], ${sql.array(names, 'text')}::text[]) AS t(x, n)`);
}

/**
 * The window the next wave waits for (`closesAt` null: none configured, any time).
 * @example await setDeploymentWindow(db, 3, opensAt, closesAt);
 */
export function setDeploymentWindow(db: Db, id: number, opensAt: number, closesAt: number | null) {
  return db.query(sql.unsafe`
    UPDATE patch_deployments SET window_start = to_timestamp(${opensAt / 1000}),
      window_end = ${closesAt === null ? null : sql.fragment`to_timestamp(${closesAt / 1000})`}, scheduled_at = now()
    WHERE id = ${id}`);
}

/** A wave found its window closed before it started: the deployment waits again (a halted one stays halted). */
export function setDeploymentWaiting(db: Db, id: number) {
  return db.query(
    sql.unsafe`
      UPDATE patch_deployments SET status = 'scheduled' WHERE id = ${id} AND status IN ('scheduled', 'in_progress')`,
  );
}

/** @example await startDeploymentWave(db, 3, 1); */
export function startDeploymentWave(db: Db, id: number, wave: number) {
  return db.query(sql.unsafe`
    UPDATE patch_deployments
    SET status = 'in_progress', current_wave = ${wave}, started_at = coalesce(started_at, now())
    WHERE id = ${id}`);
}

/**
 * Record what a rollback of each system needs, taken before the wave; a re-run keeps the first
 * record (the versions after a partial apply would be the wrong ones to restore).
 * @example await recordWaveBaseline(db, 3, [{ systemId: 2001, packages: { nginx: '1.24' }, snapshotId: '41' }]);
 */
export function recordWaveBaseline(
  db: Db,
  deploymentId: number,
  rows: { systemId: number; packages: Record<string, string>; snapshotId: string }[],
) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems s SET packages_before = v.pk, snapshot_id = v.snap
    FROM unnest(${sql.array(
      rows.map((r) => r.systemId),
      'int4',
    )}::int4[],
                ${sql.array(
                  rows.map((r) => JSON.stringify(r.packages)),
                  'text',
                )}::jsonb[],
                ${sql.array(
                  rows.map((r) => r.snapshotId),
                  'text',
                )}::text[]) AS v(sid, pk, snap)
    WHERE s.deployment_id = ${deploymentId} AND s.system_id = v.sid AND s.packages_before IS NULL`);
}

/** @example await markSystemsScheduled(db, 3, [2001, 2002], 840); */
export function markSystemsScheduled(db: Db, deploymentId: number, systemIds: number[], actionId: number) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET status = 'scheduled', action_id = ${actionId}, started_at = now()
    WHERE deployment_id = ${deploymentId} AND system_id = ANY(${sql.array(systemIds, 'int4')})`);
}

/**
 * Each system's result in UYUNI.
 * @example await recordSystemOutcomes(db, 3, [{ systemId: 2001, status: 'succeeded', message: 'Completed' }]);
 */
export function recordSystemOutcomes(
  db: Db,
  deploymentId: number,
  rows: { systemId: number; status: 'succeeded' | 'failed'; message: string }[],
) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems s SET status = v.status, message = v.message, completed_at = now()
    FROM unnest(${sql.array(
      rows.map((r) => r.systemId),
      'int4',
    )}::int4[],
                ${sql.array(
                  rows.map((r) => r.status),
                  'text',
                )}::text[],
                ${sql.array(
                  rows.map((r) => r.message),
                  'text',
                )}::text[]) AS v(sid, status, message)
    WHERE s.deployment_id = ${deploymentId} AND s.system_id = v.sid`);
}

/** @example await markRebootNotNeeded(db, 3, ['web-1']); */
export function markRebootNotNeeded(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET reboot_state = 'not_needed'
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/**
 * Reboots in production only inside the window: these wait for the next one.
 * @example await deferReboots(db, 3, ['web-1']);
 */
export function deferReboots(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET reboot_state = 'deferred', message = 'reboot deferred to the next window'
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/**
 * Written before Salt is asked to reboot: a resumed run compares it with the host's boot time.
 * @example await markRebootRequested(db, 3, ['web-1']);
 */
export function markRebootRequested(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET reboot_state = 'requested', reboot_requested_at = now()
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/** @example await markRebooted(db, 3, ['web-1']); */
export function markRebooted(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET reboot_state = 'done', message = coalesce(message, '') || ' · rebooted'
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/** @example await markRebootLost(db, 3, ['web-1']); */
export function markRebootLost(db: Db, deploymentId: number, names: string[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems SET reboot_state = 'failed', status = 'failed',
      message = 'did not come back after the reboot'
    WHERE deployment_id = ${deploymentId} AND system_name = ANY(${sql.array(names, 'text')})`);
}

/**
 * The post-wave service check of each system: `bad` lists the services not active ('' = all
 * fine); a system with any fails.
 * @example await recordPostWaveChecks(db, 3, [{ systemId: 2001, bad: 'nginx' }]);
 */
export function recordPostWaveChecks(db: Db, deploymentId: number, rows: { systemId: number; bad: string }[]) {
  return db.query(sql.unsafe`
    UPDATE patch_deployment_systems s SET checked_at = now(),
      status = CASE WHEN v.bad = '' THEN s.status ELSE 'failed' END,
      message = CASE WHEN v.bad = '' THEN s.message ELSE 'services not active after the patch: ' || v.bad END
    FROM unnest(${sql.array(
      rows.map((r) => r.systemId),
      'int4',
    )}::int4[], ${sql.array(
      rows.map((r) => r.bad),
      'text',
    )}::text[]) AS v(sid, bad)
    WHERE s.deployment_id = ${deploymentId} AND s.system_id = v.sid`);
}

/** @example await setDeploymentCounters(db, 3, { succeeded: 9, failedIds: [2004] }); */
export function setDeploymentCounters(db: Db, id: number, c: { succeeded: number; failedIds: number[] }) {
  return db.query(sql.unsafe`
    UPDATE patch_deployments SET systems_succeeded = ${c.succeeded}, systems_failed = ${c.failedIds.length},
      failed_system_ids = ${sql.array(c.failedIds, 'int4')}
    WHERE id = ${id}`);
}

/** @example await haltDeployment(db, 3, 'wave 1: 2 system(s) failed (threshold 1)'); */
export function haltDeployment(db: Db, id: number, reason: string) {
  return db.query(sql.unsafe`UPDATE patch_deployments SET status = 'halted', halt_reason = ${reason} WHERE id = ${id}`);
}

/** After the last wave. @example await finishDeployment(db, 3, 'partial_failure'); */
export function finishDeployment(db: Db, id: number, status: 'completed' | 'partial_failure') {
  return db.query(sql.unsafe`UPDATE patch_deployments SET status = ${status}, completed_at = now() WHERE id = ${id}`);
}

/**
 * The production systems of an entry's deployments that carry, or may carry, the errata: an apply
 * action was scheduled on them (any status but pending or skipped) and no rollback of them
 * completed (`rolled_back`). A failed system counts: its action may have applied part of the
 * errata, or its services failed after it applied.
 * @example await systemsCarryingPatch(db, 7) // [{ deployment_id: 3, system_id: 2001, system_name: 'web-1', status: 'succeeded' }]
 */
export function systemsCarryingPatch(db: Db, queueId: number) {
  return db.any(sql.type(
    z.object({ deployment_id: z.number(), system_id: z.number(), system_name: z.string(), status: z.string() }),
  )`
    SELECT s.deployment_id, s.system_id, s.system_name, s.status
    FROM patch_deployment_systems s JOIN patch_deployments d ON d.id = s.deployment_id
    WHERE d.queue_id = ${queueId} AND s.status NOT IN ('pending', 'skipped', 'rolled_back')
    ORDER BY s.deployment_id, s.system_id
    LIMIT 1000`);
}

export * from './groupLocks.ts';
