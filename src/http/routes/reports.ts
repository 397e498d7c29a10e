/**
 * Reports (design §8): a summary of the pipeline and a compliance view — per OS and severity, how
 * many Security Advisories the fleet needs, how many are deployed, in progress, and overdue
 * (first seen more than `days` ago and not deployed).
 */
import type { Hono } from 'hono';
import { sql } from 'slonik';
import { z } from 'zod';
import type { BaseDeps } from '../../interfaces.ts';
import { requireRole } from '../auth.ts';
import type { ApiEnv } from '../context.ts';
import { readQuery } from '../validate.ts';

const kv = z.object({ k: z.string(), n: z.number() });
const map = (rows: readonly { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));

export function reportRoutes(deps: BaseDeps) {
  return (api: Hono<ApiEnv>) => {
    api.get('/reports/summary', requireRole('viewer'), async (c) => {
      const { days } = readQuery(c, z.object({ days: z.coerce.number().int().min(1).max(3650).default(30) }));
      const since = sql.fragment`now() - make_interval(days => ${days})`;
      const [queue, tests, deployments, rollbacks, notifications, waiting] = await Promise.all([
        deps.db.any(sql.type(kv)`SELECT status AS k, count(*)::int AS n FROM patch_test_queue GROUP BY status ORDER BY status`),
        deps.db.any(sql.type(kv)`SELECT coalesce(result, 'unknown') AS k, count(*)::int AS n FROM patch_tests WHERE started_at >= ${since} GROUP BY 1 ORDER BY 1`),
        deps.db.any(sql.type(kv)`SELECT status AS k, count(*)::int AS n FROM patch_deployments WHERE created_at >= ${since} GROUP BY status ORDER BY status`),
        deps.db.any(sql.type(kv)`SELECT rollback_type || ':' || status AS k, count(*)::int AS n FROM patch_rollbacks WHERE started_at >= ${since} GROUP BY 1 ORDER BY 1`),
        deps.db.any(sql.type(kv)`SELECT status AS k, count(*)::int AS n FROM orchestrator_notifications WHERE created_at >= ${since} GROUP BY status ORDER BY status`),
        deps.db.one(sql.type(z.object({ n: z.number(), oldest_hours: z.number().nullable() }))`
          SELECT count(*)::int AS n, round(max(hours_pending)::numeric, 1)::float8 AS oldest_hours FROM v_pending_approvals`),
      ]);
      return c.json({ days, queue: map(queue), tests: map(tests), deployments: map(deployments), rollbacks: map(rollbacks), notifications: map(notifications), pending_approvals: waiting });
    });

    api.get('/reports/compliance', requireRole('viewer'), async (c) => {
      const { days } = readQuery(c, z.object({ days: z.coerce.number().int().min(1).max(3650).default(30) }));
      const rows = await deps.db.any(sql.type(z.object({ target_os: z.string(), severity: z.string(), needed: z.number(), deployed: z.number(), in_progress: z.number(), overdue: z.number() }))`
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
               count(*) FILTER (WHERE NOT coalesce(deployed, false) AND first_seen_at < now() - make_interval(days => ${days}))::int AS overdue
        FROM sec GROUP BY target_os, severity
        ORDER BY target_os, CASE severity WHEN 'Critical' THEN 0 WHEN 'High' THEN 1 WHEN 'Medium' THEN 2 WHEN 'Low' THEN 3 ELSE 4 END`);
      const total = rows.reduce((a, r) => ({ needed: a.needed + r.needed, deployed: a.deployed + r.deployed, overdue: a.overdue + r.overdue }), { needed: 0, deployed: 0, overdue: 0 });
      return c.json({ days, rows, total: { ...total, deployed_percent: total.needed > 0 ? Math.round((total.deployed / total.needed) * 1000) / 10 : null } });
    });
  };
}
