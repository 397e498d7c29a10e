/** The cve_cache family and errata severity enrichment. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';
import type { CveScore } from '../../services/nvd/client.ts';

/** CVEs referenced by cached errata that NVD has not answered yet. */
export function uncachedCves(db: Db, limit: number) {
  return db.anyFirst(sql.type(z.object({ cve: z.string() }))`
    SELECT DISTINCT c AS cve FROM errata_cache e, unnest(e.cves) AS c
    WHERE c ~ '^CVE-\\d{4}-\\d{4,}$' AND NOT EXISTS (SELECT 1 FROM cve_cache k WHERE k.cve_id = c)
    ORDER BY 1 LIMIT ${limit}`);
}

export function saveCveScore(db: Db, s: CveScore) {
  return db.query(sql.unsafe`
    INSERT INTO cve_cache (cve_id, base_score, severity, cvss_version, vector, found)
    VALUES (${s.cveId}, ${s.baseScore}, ${s.severity}, ${s.cvssVersion}, ${s.vector}, ${s.found})
    ON CONFLICT (cve_id) DO UPDATE SET base_score = excluded.base_score, severity = excluded.severity, cvss_version = excluded.cvss_version,
      vector = excluded.vector, found = excluded.found, fetched_at = now()`);
}

/**
 * Raise each errata's severity to the highest of its CVEs that NVD scored (and keep the UYUNI
 * mapping where NVD knows nothing). Returns how many errata changed.
 */
export async function applyNvdSeverity(db: Db): Promise<number> {
  const res = await db.query(sql.unsafe`
    WITH best AS (
      SELECT e.errata_id, max(k.base_score) AS score
      FROM errata_cache e JOIN LATERAL unnest(e.cves) AS c ON true JOIN cve_cache k ON k.cve_id = c
      WHERE k.base_score IS NOT NULL
      GROUP BY e.errata_id)
    UPDATE errata_cache e
    SET cvss_score = best.score,
        severity = CASE WHEN best.score >= 9 THEN 'Critical' WHEN best.score >= 7 THEN 'High' WHEN best.score >= 4 THEN 'Medium'
                        WHEN best.score > 0 THEN 'Low' ELSE e.severity END,
        severity_source = 'nvd', nvd_enriched_at = now(), updated_at = now()
    FROM best WHERE e.errata_id = best.errata_id
      AND (e.cvss_score IS DISTINCT FROM best.score OR e.severity_source <> 'nvd')`);
  return res.rowCount;
}
