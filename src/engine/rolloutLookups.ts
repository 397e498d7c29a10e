/** Lookups of the production rollout (rollout.ts): a deployment and its systems, a group's windows, why it waits. */
import {
  getDeployment,
  listDeploymentSystems,
  type DeploymentRow,
  type GroupLockHolder,
} from '../persistence/sql/rollout.ts';
import { loadMaintenanceWindows } from '../services/settings.ts';
import { nextWindow, openWindow, windowsFor } from '../services/windows.ts';
import type { EngineDeps } from './deps.ts';

/** @example const dep = await deploymentOf(e, input.deploymentId); */
export async function deploymentOf(e: EngineDeps, id: number): Promise<DeploymentRow> {
  const d = await getDeployment(e.db, id);
  if (!d) throw new Error(`deployment ${id} does not exist`);
  return d;
}

/** A deployment's system rows (one wave's when given). @example const rows = await systemsOf(e, dep.id, 0); */
export const systemsOf = (e: EngineDeps, id: number, wave?: number) => listDeploymentSystems(e.db, id, wave);

/** The maintenance windows of a group now: the open one, the next one, whether any is configured. */
export async function windowOf(e: EngineDeps, group: string | null, minRemainingMs: number, now: number) {
  const windows = windowsFor(await loadMaintenanceWindows(e.db), group);
  return {
    open: openWindow(windows, now, minRemainingMs),
    next: nextWindow(windows, now, minRemainingMs),
    configured: windows.length > 0,
  };
}

/** What a deployment waiting for its production groups shows (GET /queue/{id}, the dashboard). */
export function groupWaitReason(busy: readonly GroupLockHolder[]): string {
  return busy
    .map(
      (b) =>
        `waiting for production group ${b.group_name}: deployment ${b.deployment_id} of ${b.errata_id} (entry ${b.queue_id}) is in progress since ${new Date(b.acquired_at).toISOString()}`,
    )
    .join('; ');
}
