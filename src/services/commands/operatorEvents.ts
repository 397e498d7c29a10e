/**
 * RETRY, MARK_FAILED and FORCE_ROLLBACK on an entry that needs attention, and which of them touch
 * production (the approver role's, by the endpoint table's elevation rules).
 *
 * Production-affecting: a FORCE_ROLLBACK of type `system` (snapshot rollback and reboot of the
 * hosts), and any of the three on an entry whose production work has begun (its attention phase
 * is `prod` or `prod_rollback`, or it has a deployment): a RETRY resumes waves on production
 * hosts, a FORCE_ROLLBACK rolls them back, a MARK_FAILED closes the entry as `rolled_back`.
 *
 * MARK_FAILED is refused (409 `production_carries_patch`) while a production system of the entry
 * carries, or may carry, the errata: `rolled_back` would then be false — the compliance report
 * would count the errata as absent from hosts that run it, and a new version would be re-queued
 * as if nothing were deployed. Roll those systems back first (FORCE_ROLLBACK, or
 * `POST /deployments/{id}/rollback`), or RETRY to finish the deployment.
 */
import { AppError } from '../../errors.ts';
import type { ActorHost, EventMeta } from '../../machines/host.ts';
import type { PatchContext, PatchEvent } from '../../machines/patch.machine.ts';
import type { Db } from '../../persistence/db.ts';
import { systemsCarryingPatch } from '../../persistence/sql/rollout.ts';

/** What the operator events need. */
export interface OperatorEventDeps {
  db: Db;
  actors: ActorHost;
}

/** Whether the entry's production work has begun (see the module comment). */
export function inProductionPhase(ctx: PatchContext): boolean {
  const phase = ctx.attention?.phase;
  return phase === 'prod' || phase === 'prod_rollback' || (ctx.prod?.deploymentId ?? null) !== null;
}

/**
 * Why this operator event touches production (the approver role's), or null.
 * @example await productionReason(deps, 12, { rollbackType: 'system' }) // 'a system-level rollback (snapshot and reboot)'
 */
export async function productionReason(
  deps: OperatorEventDeps,
  id: number,
  opts: { rollbackType?: string | undefined } = {},
): Promise<string | null> {
  if (opts.rollbackType === 'system') return 'a system-level rollback (snapshot and reboot of the hosts)';
  const cur = await deps.actors.contextOf(id);
  if (cur !== null && inProductionPhase(cur.context)) return `entry ${id} is in its production phase`;
  return null;
}

type OperatorEvent = Extract<PatchEvent, { type: 'RETRY' | 'MARK_FAILED' | 'FORCE_ROLLBACK' }>;

/**
 * Send the event, after the MARK_FAILED rule.
 * @example await sendOperatorEvent(deps, 12, { type: 'MARK_FAILED', by: m.actor, reason: 'host rebuilt' }, m);
 */
export async function sendOperatorEvent(
  deps: OperatorEventDeps,
  id: number,
  ev: Omit<OperatorEvent, 'at'>,
  m: EventMeta,
) {
  if (ev.type === 'MARK_FAILED') {
    const cur = await deps.actors.contextOf(id);
    if (cur !== null && inProductionPhase(cur.context)) {
      const carrying = await systemsCarryingPatch(deps.db, id);
      if (carrying.length > 0) {
        throw new AppError(
          409,
          'production_carries_patch',
          `entry ${id} cannot be marked failed (rolled_back): ${carrying.length} production system(s) still carry or may carry the errata ` +
            `(${carrying
              .slice(0, 5)
              .map((s) => s.system_name)
              .join(', ')}${carrying.length > 5 ? ', …' : ''}); ` +
            'roll them back first (force-rollback, or POST /deployments/{id}/rollback) or retry the deployment',
          {
            systems: carrying.map((s) => ({
              deployment_id: s.deployment_id,
              system_id: s.system_id,
              status: s.status,
            })),
          },
        );
      }
    }
  }
  return deps.actors.send(id, ev as never, m);
}
