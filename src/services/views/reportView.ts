/** The answers of `GET /reports/summary` and `GET /reports/compliance` (design §8). */
import type { Db } from '../../persistence/db.ts';
import { countEntriesByStatus } from '../../persistence/sql/queue.ts';
import {
  countDeploymentsByStatusSince,
  countNotificationsByStatusSince,
  countRollbacksSince,
  countTestsByResultSince,
  listComplianceRows,
  readApprovalBacklog,
  type ComplianceRow,
} from '../../persistence/sql/reports.ts';

/**
 * The pipeline over the last `days` days: entries by status (all time), tests, deployments,
 * rollbacks and notifications of the period, and the approval backlog.
 * @example
 * const summary = await pipelineSummary(db, 30);
 */
export async function pipelineSummary(db: Db, days: number) {
  const [queue, tests, deployments, rollbacks, notifications, waiting] = await Promise.all([
    countEntriesByStatus(db),
    countTestsByResultSince(db, days),
    countDeploymentsByStatusSince(db, days),
    countRollbacksSince(db, days),
    countNotificationsByStatusSince(db, days),
    readApprovalBacklog(db),
  ]);
  return { days, queue, tests, deployments, rollbacks, notifications, pending_approvals: waiting };
}

/**
 * The compliance rows and their total, with the deployed share in percent (one decimal; null when
 * nothing is needed).
 * @example
 * const { rows, total } = await complianceReport(db, 30);
 */
export async function complianceReport(db: Db, days: number) {
  const rows = await listComplianceRows(db, days);
  const total = rows.reduce(
    (a: { needed: number; deployed: number; overdue: number }, r: ComplianceRow) => ({
      needed: a.needed + r.needed,
      deployed: a.deployed + r.deployed,
      overdue: a.overdue + r.overdue,
    }),
    { needed: 0, deployed: 0, overdue: 0 },
  );
  const deployedPercent = total.needed > 0 ? Math.round((total.deployed / total.needed) * 1000) / 10 : null;
  return { days, rows, total: { ...total, deployed_percent: deployedPercent } };
}
