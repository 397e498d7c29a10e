/**
 * Sync and errata-cache routes: `POST /sync/trigger` (409 with the running sync's progress),
 * `GET /sync/status`, `GET /errata/cache/stats`, `GET /errata`.
 */
import type { Hono } from 'hono';
import { sql } from 'slonik';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import { lastSyncRun } from '../../persistence/sql/errata.ts';
import { SyncAlreadyRunning, type UyuniSync } from '../../scheduler/sync.ts';
import { requireRole } from '../auth.ts';
import type { ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readQuery } from '../validate.ts';

export function syncRoutes(deps: BaseDeps & { sync: UyuniSync | undefined }) {
  return (api: Hono<ApiEnv>) => {
    api.post('/sync/trigger', requireRole('operator'), async (c) => {
      if (!deps.sync) throw new AppError(503, 'uyuni_not_configured', 'UYUNI is not configured (set UYUNI_URL, UYUNI_USER, UYUNI_PASSWORD)');
      try {
        const report = await deps.sync.run('api');
        return c.json(report, report.status === 'completed' ? 200 : 502);
      } catch (raw) {
        if (raw instanceof SyncAlreadyRunning) throw new AppError(409, 'sync_running', 'a sync is already running', { progress: raw.progress });
        throw raw;
      }
    });

    api.get('/sync/status', requireRole('viewer'), async (c) => {
      const last = await lastSyncRun(deps.db);
      return c.json({ configured: deps.sync !== undefined, running: deps.sync?.running ?? null, last_run: toApi(last) });
    });

    api.get('/errata/cache/stats', requireRole('viewer'), async (c) => {
      const rows = await deps.db.any(sql.type(z.object({ target_os: z.string(), advisory_type: z.string(), severity: z.string(), n: z.number() }))`
        SELECT target_os, advisory_type, severity, count(*)::int AS n FROM errata_cache GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`);
      const sum = (key: 'target_os' | 'advisory_type' | 'severity') => rows.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r[key]]: (acc[r[key]] ?? 0) + r.n }), {});
      const agg = await deps.db.one(sql.type(z.object({ total: z.number(), with_cves: z.number(), nvd_enriched: z.number(), last_synced_at: z.number().nullable() }))`
        SELECT count(*)::int AS total, count(*) FILTER (WHERE cardinality(cves) > 0)::int AS with_cves,
               count(*) FILTER (WHERE severity_source = 'nvd')::int AS nvd_enriched, (extract(epoch FROM max(synced_at)) * 1000)::float8 AS last_synced_at
        FROM errata_cache`);
      return c.json({ ...toApi(agg), by_os: sum('target_os'), by_type: sum('advisory_type'), by_severity: sum('severity') });
    });

    api.get('/errata', requireRole('viewer'), async (c) => {
      const q = readQuery(c, z.object({
        target_os: z.enum(['ubuntu', 'debian', 'rhel']).optional(),
        severity: z.enum(['Critical', 'High', 'Medium', 'Low', 'Unknown']).optional(),
        advisory_type: z.enum(['Security Advisory', 'Bug Fix Advisory', 'Product Enhancement Advisory']).optional(),
        search: z.string().max(100).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        offset: z.coerce.number().int().min(0).default(0),
      }));
      const where = sql.join([
        sql.fragment`true`,
        q.target_os ? sql.fragment`target_os = ${q.target_os}` : sql.fragment`true`,
        q.severity ? sql.fragment`severity = ${q.severity}` : sql.fragment`true`,
        q.advisory_type ? sql.fragment`advisory_type = ${q.advisory_type}` : sql.fragment`true`,
        q.search ? sql.fragment`(errata_id ILIKE ${`%${q.search}%`} OR synopsis ILIKE ${`%${q.search}%`})` : sql.fragment`true`,
      ], sql.fragment` AND `);
      const items = await deps.db.any(sql.type(z.object({}).passthrough())`
        SELECT errata_id, synopsis, advisory_type, advisory_status, severity, severity_source, cvss_score, cves, target_os, errata_version,
               cardinality(affected_system_ids) AS systems, reboot_suggested, synced_at
        FROM errata_cache WHERE ${where} ORDER BY errata_id LIMIT ${q.limit} OFFSET ${q.offset}`);
      const total = await deps.db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM errata_cache WHERE ${where}`);
      return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
    });
  };
}
