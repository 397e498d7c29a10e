/**
 * Operator requests on a production deployment (design §8, §12 L6–L7). Every change goes through
 * the entry's actor, so it is journalled, fenced and answered only once committed — except the
 * rollback of a deployment whose entry completed: its actor is final, so the rollback is filed as a
 * durable job (a `patch_rollbacks` row) for the rollback runner.
 */
import { AppError } from '../../errors.ts';
import type { ActorHost, EventMeta } from '../../machines/host.ts';
import type { Db } from '../../persistence/db.ts';
import {
  findDeployment,
  findRunningRollback,
  findSystemsOfDeployment,
  insertRollbackJob,
  listAppliedSystems,
  readDeploymentEntry,
  readRollbackNumbering,
  type DeploymentRecord,
} from '../../persistence/sql/deployments.ts';
import { changeAudit, insertAudit } from '../../persistence/sql/audit.ts';
import type { RollbackRunner } from '../../scheduler/rollbacks.ts';
import { loadMaintenanceWindows, loadRolloutPolicy } from '../settings.ts';
import { openWindow, windowsFor } from '../windows.ts';

/** What the deployment requests need. */
export interface DeploymentCommandDeps {
  db: Db;
  actors: ActorHost;
  /** Runs rollbacks of deployments whose entry completed (absent: no test engine). */
  rollbacks?: RollbackRunner | undefined;
}

/** A rollback as the operator asks for it. */
export interface RollbackRequest {
  type: 'package' | 'system';
  /** Absent: every system the deployment applied. */
  systems?: number[] | undefined;
  reason: string;
}

async function deploymentOr404(db: Db, id: number): Promise<DeploymentRecord> {
  const d = await findDeployment(db, id);
  if (!d) throw new AppError(404, 'not_found', `deployment ${id} does not exist`);
  return d;
}

/**
 * Start a deployment waiting for its window, now — only while the window of its next wave's group
 * is open (and not about to close).
 * @returns the entry's answer, with the deployment id
 * @example
 * const res = await startDeployment(deps, 3, meta); // { deployment_id: 3, status: 'prod_pending', … }
 */
export async function startDeployment(deps: DeploymentCommandDeps, id: number, m: EventMeta) {
  const d = await deploymentOr404(deps.db, id);
  const entry = await readDeploymentEntry(deps.db, d.queue_id);
  const sv = entry.state_value as { prod_pending?: string } | null;
  if (sv?.prod_pending !== 'awaiting_window') {
    throw new AppError(
      409,
      'invalid_state',
      `deployment ${id} is not waiting for its window (entry is ${entry.status})`,
      { status: entry.status },
    );
  }
  const group = d.waves.find((_, i) => i >= Number(d.current_wave ?? 0))?.group ?? null;
  const policy = await loadRolloutPolicy(deps.db);
  const minRemainingMs = policy.min_window_remaining_minutes * 60_000;
  const open = openWindow(
    windowsFor(await loadMaintenanceWindows(deps.db), group),
    deps.actors.clock.now(),
    minRemainingMs,
  );
  if (!open) {
    throw new AppError(
      409,
      'outside_window',
      `the maintenance window of ${group ?? 'this deployment'} is not open (or ends within ` +
        `${policy.min_window_remaining_minutes} min): a deployment may only be started inside a window`,
    );
  }
  return { deployment_id: id, ...(await deps.actors.send(entry.id, { type: 'START_DEPLOYMENT', by: m.actor }, m)) };
}

/**
 * Roll a deployment back, through the event its entry's state accepts: ROLLBACK after the last
 * wave (prod_applied), FORCE_ROLLBACK when it halted or failed (needs_attention in a prod phase),
 * a rollback job once the entry completed.
 * @returns what to answer with 202
 * @example
 * await requestRollback(deps, 3, { type: 'package', reason: 'broke nginx' }, meta);
 */
export async function requestRollback(
  deps: DeploymentCommandDeps,
  deploymentId: number,
  body: RollbackRequest,
  m: EventMeta,
) {
  const d = await deploymentOr404(deps.db, deploymentId);
  const entry = await readDeploymentEntry(deps.db, d.queue_id);
  const common = {
    by: m.actor,
    reason: body.reason,
    rollbackType: body.type,
    ...(body.systems ? { systems: body.systems } : {}),
  };
  if (body.systems) {
    // A Set: the list may hold 100,000 systems, so `includes` per system would be quadratic.
    const known = new Set(await findSystemsOfDeployment(deps.db, deploymentId, body.systems));
    const unknown = body.systems.filter((s) => !known.has(s));
    if (unknown.length > 0) {
      throw new AppError(400, 'validation_failed', `systems not in deployment ${deploymentId}: ${unknown.join(', ')}`, [
        { path: 'systems', message: 'not in this deployment' },
      ]);
    }
  }
  if (entry.status === 'completed') return fileRollbackJob(deps, deploymentId, entry.id, body, m);
  const halted =
    entry.status === 'needs_attention' &&
    (entry.attention_phase === 'prod' || entry.attention_phase === 'prod_rollback');
  if (entry.status !== 'prod_applied' && !halted) {
    throw new AppError(
      409,
      'invalid_state',
      `deployment ${deploymentId} cannot be rolled back while its entry is ${entry.status}: ` +
        'a rollback is possible after the last wave (prod_applied, completed) ' +
        'or when the deployment halted or failed (needs_attention)',
      { status: entry.status },
    );
  }
  const event = halted ? { type: 'FORCE_ROLLBACK' as const, ...common } : { type: 'ROLLBACK' as const, ...common };
  const res = await deps.actors.send(entry.id, event, m);
  return { deployment_id: deploymentId, queue_id: entry.id, ...res };
}

/** The entry's actor is final: the rollback runs as a durable job (a patch_rollbacks row). */
async function fileRollbackJob(
  deps: DeploymentCommandDeps,
  deploymentId: number,
  queueId: number,
  body: RollbackRequest,
  m: EventMeta,
) {
  if (!deps.rollbacks)
    throw new AppError(503, 'engine_unavailable', 'rollbacks need the test engine (UYUNI_URL and SALT_API_URL)');
  const systems = body.systems ?? (await listAppliedSystems(deps.db, deploymentId));
  if (systems.length === 0) {
    throw new AppError(409, 'nothing_to_roll_back', `deployment ${deploymentId} has no applied system to roll back`);
  }
  const running = await findRunningRollback(deps.db, deploymentId);
  if (running !== null) {
    throw new AppError(
      409,
      'rollback_in_progress',
      `rollback ${running} of deployment ${deploymentId} is still running`,
      { rollback_id: running },
    );
  }
  const { errata_id: errataId, n } = await readRollbackNumbering(deps.db, deploymentId);
  // The job and the request's audit row commit together.
  const id = await deps.db.transaction(async (tx) => {
    const job = await insertRollbackJob(tx, {
      deploymentId,
      queueId,
      errataId,
      type: body.type,
      systems,
      reason: body.reason,
      initiatedBy: m.actor,
      effectKey: `rb:${deploymentId}:${n + 1}`,
    });
    if (m.audit) {
      await insertAudit(
        tx,
        changeAudit(
          m.audit,
          { type: 'deployment', id: String(deploymentId) },
          {
            rollback_id: job,
            rollback_type: body.type,
            systems: systems.length,
            queue_id: queueId,
          },
        ),
      );
    }
    return job;
  });
  if (m.audit) m.audit.written++;
  deps.rollbacks.nudge();
  return { deployment_id: deploymentId, queue_id: queueId, rollback_id: id, status: 'in_progress' };
}
