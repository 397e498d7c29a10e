/**
 * What the sync and errata routes read about the errata cache (the sync's own writes and its
 * `sync_runs` rows live in `errata.ts`).
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/** How many cached errata of one OS, advisory type and severity. */
export const errataKindCount = z.object({
  target_os: z.string(),
  advisory_type: z.string(),
  severity: z.string(),
  n: z.number(),
});
export type ErrataKindCount = z.infer<typeof errataKindCount>;

/**
 * Cached errata per OS × advisory type × severity.
 * @example
 * const rows = await countErrataByKind(db);
 * // [{ target_os: 'rhel', advisory_type: 'Security Advisory', severity: 'High', n: 4 }]
 */
export function countErrataByKind(db: Db): Promise<readonly ErrataKindCount[]> {
  return db.any(sql.type(errataKindCount)`
    SELECT target_os, advisory_type, severity, count(*)::int AS n FROM errata_cache GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`);
}

/**
 * Totals of the errata cache: how many, with CVEs, enriched by NVD, and the last sync (epoch ms).
 * @example
 * const { total, last_synced_at } = await readErrataCacheTotals(db);
 */
export function readErrataCacheTotals(db: Db) {
  return db.one(sql.type(
    z.object({
      total: z.number(),
      with_cves: z.number(),
      nvd_enriched: z.number(),
      last_synced_at: z.number().nullable(),
    }),
  )`
    SELECT count(*)::int AS total, count(*) FILTER (WHERE cardinality(cves) > 0)::int AS with_cves,
           count(*) FILTER (WHERE severity_source = 'nvd')::int AS nvd_enriched,
           (extract(epoch FROM max(synced_at)) * 1000)::float8 AS last_synced_at
    FROM errata_cache`);
}

/** Filters and page of `GET /errata`. */
export interface ErrataFilters {
  target_os?: string | undefined;
  severity?: string | undefined;
  advisory_type?: string | undefined;
  /** Substring of the errata id or synopsis (case-insensitive). */
  search?: string | undefined;
  limit: number;
  offset: number;
}

/**
 * One page of the errata cache by errata id, with the number of affected systems, and the total.
 * @example
 * const { items, total } = await listErrata(db, { target_os: 'rhel', limit: 100, offset: 0 });
 */
export async function listErrata(db: Db, f: ErrataFilters) {
  // The search is not escaped: `%` and `_` in it act as LIKE wildcards, as the API always allowed.
  const where = sql.join(
    [
      sql.fragment`true`,
      f.target_os ? sql.fragment`target_os = ${f.target_os}` : sql.fragment`true`,
      f.severity ? sql.fragment`severity = ${f.severity}` : sql.fragment`true`,
      f.advisory_type ? sql.fragment`advisory_type = ${f.advisory_type}` : sql.fragment`true`,
      f.search
        ? sql.fragment`(errata_id ILIKE ${`%${f.search}%`} OR synopsis ILIKE ${`%${f.search}%`})`
        : sql.fragment`true`,
    ],
    sql.fragment` AND `,
  );
  const items = await db.any(sql.type(z.object({}).passthrough())`
    SELECT errata_id, synopsis, advisory_type, advisory_status, severity, severity_source, cvss_score, cves, target_os,
           errata_version, cardinality(affected_system_ids) AS systems, reboot_suggested, synced_at
    FROM errata_cache WHERE ${where} ORDER BY errata_id LIMIT ${f.limit} OFFSET ${f.offset}`);
  const total = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM errata_cache WHERE ${where}`);
  return { items, total };
}
