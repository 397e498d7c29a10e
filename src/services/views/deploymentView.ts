/** The answer of `GET /deployments/{id}`: the deployment with its systems and rollbacks. */
import type { Db } from '../../persistence/db.ts';
import {
  findDeployment,
  listRollbacksOfDeployment,
  listSystemsOfDeployment,
} from '../../persistence/sql/deployments.ts';

/**
 * A deployment (every column) with `systems` (by wave) and `rollbacks` (oldest first), or null.
 * @example
 * const detail = await deploymentDetail(db, 3);
 */
export async function deploymentDetail(db: Db, id: number) {
  const d = await findDeployment(db, id);
  if (!d) return null;
  const systems = await listSystemsOfDeployment(db, id);
  const rollbacks = await listRollbacksOfDeployment(db, id);
  return { ...d, systems, rollbacks };
}
