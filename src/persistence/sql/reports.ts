/**
 * What the reports read (design §8): counts over a period, the approval backlog and the compliance
 * rows. Every "since" is `now() - days` on the database clock, so a report agrees with the rows' own
 * timestamps whatever the daemon's clock says.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';
import { SEVERITY_RANK } from './queue.ts';

const keyCount = z.object({ k: z.string(), n: z.number() });
const byKey = (rows: readonly { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));
const since = (days: number) => sql.fragment`now() - make_interval(days => ${days})`;

/**
 * Tests started in the last `days` days, by result (`unknown` while running).
 * @example
 * await countTestsByResultSince(db, 30); // { passed: 4, failed: 1 }
 */
export async function countTestsByResultSince(db: Db, days: number): Promise<Record<string, number>> {
  return byKey(
    await db.any(sql.type(keyCount)`
    SELECT coalesce(result, 'unknown') AS k, count(*)::int AS n FROM patch_tests
    WHERE started_at >= ${since(days)} GROUP BY 1 ORDER BY 1`),
  );
}

/**
 * Deployments created in the last `days` days, by status.
 * @example
 * await countDeploymentsByStatusSince(db, 30); // { completed: 2 }
 */
export async function countDeploymentsByStatusSince(db: Db, days: number): Promise<Record<string, number>> {
  return byKey(
    await db.any(sql.type(keyCount)`
    SELECT status AS k, count(*)::int AS n FROM patch_deployments
    WHERE created_at >= ${since(days)} GROUP BY status ORDER BY status`),
  );
}

/**
 * Rollbacks started in the last `days` days, by `type:status`.
 * @example
 * await countRollbacksSince(db, 30); // { 'package:completed': 1 }
 */
export async function countRollbacksSince(db: Db, days: number): Promise<Record<string, number>> {
  return byKey(
    await db.any(sql.type(keyCount)`
    SELECT rollback_type || ':' || status AS k, count(*)::int AS n FROM patch_rollbacks
    WHERE started_at >= ${since(days)} GROUP BY 1 ORDER BY 1`),
  );
}

/**
 * Notifications created in the last `days` days, by delivery status.
 * @example
 * await countNotificationsByStatusSince(db, 30); // { sent: 9, failed: 1 }
 */
export async function countNotificationsByStatusSince(db: Db, days: number): Promise<Record<string, number>> {
  return byKey(
    await db.any(sql.type(keyCount)`
    SELECT status AS k, count(*)::int AS n FROM orchestrator_notifications
    WHERE created_at >= ${since(days)} GROUP BY status ORDER BY status`),
  );
}

/**
 * How many entries wait for a decision, and for how many hours the oldest has waited.
 * @example
 * await readApprovalBacklog(db); // { n: 2, oldest_hours: 5.5 }
 */
export function readApprovalBacklog(db: Db): Promise<{ n: number; oldest_hours: number | null }> {
  return db.one(sql.type(z.object({ n: z.number(), oldest_hours: z.number().nullable() }))`
    SELECT count(*)::int AS n, round(max(hours_pending)::numeric, 1)::float8 AS oldest_hours FROM v_pending_approvals`);
}

/** One OS × severity row of the compliance report. */
export const complianceRow = z.object({
  target_os: z.string(),
  severity: z.string(),
  needed: z.number(),
  deployed: z.number(),
  in_progress: z.number(),
  overdue: z.number(),
});
export type ComplianceRow = z.infer<typeof complianceRow>;

/**
 * Per OS and severity: Security Advisories the fleet needs (some system affected), deployed
 * (an entry completed), in progress (a live entry) and overdue (first seen more than `days` ago and
 * not deployed). Most severe first within an OS.
 * @example
 * const rows = await listComplianceRows(db, 30);
 */
export function listComplianceRows(db: Db, days: number): Promise<readonly ComplianceRow[]> {
  // One row per errata × OS first (bool_or over its entries), so a re-queued errata counts once.
  return db.any(sql.type(complianceRow)`
    WITH sec AS (
      SELECT e.errata_id, e.target_os, e.severity, e.first_seen_at,
             bool_or(q.status = 'completed') AS deployed,
             bool_or(q.status NOT IN ('completed', 'rejected', 'rolled_back', 'removed')) AS live
      FROM errata_cache e LEFT JOIN patch_test_queue q ON q.errata_id = e.errata_id AND q.target_os = e.target_os
      WHERE e.advisory_type = 'Security Advisory' AND cardinality(e.affected_system_ids) > 0
      GROUP BY e.errata_id, e.target_os, e.severity, e.first_seen_at)
    SELECT target_os, severity, count(*)::int AS needed,
           count(*) FILTER (WHERE deployed)::int AS deployed,
           count(*) FILTER (WHERE NOT coalesce(deployed, false) AND coalesce(live, false))::int AS in_progress,
           count(*) FILTER (WHERE NOT coalesce(deployed, false)
                              AND first_seen_at < now() - make_interval(days => ${days}))::int AS overdue
    FROM sec GROUP BY target_os, severity
    ORDER BY target_os, ${SEVERITY_RANK}`);
}
