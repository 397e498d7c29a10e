/** The answers of `GET /sync/status` and `GET /errata/cache/stats`. */
import type { Db } from '../../persistence/db.ts';
import { lastSyncRun } from '../../persistence/sql/errata.ts';
import { loadIntegrationStatus } from '../../persistence/sql/integrationStatus.ts';
import { countErrataByKind, readErrataCacheTotals, type ErrataKindCount } from '../../persistence/sql/syncStatus.ts';
import type { UyuniSync } from '../uyuni/sync.ts';

/**
 * What NVD enrichment last saw, shared by every replica: `disabled` (NVD_ENABLED=false), `unknown`
 * (not contacted yet), `reachable` or `unreachable` since a time, with one line for status pages.
 * @example await nvdStatus(db, true) // { state: 'unreachable', since: '2026-…', message: 'NVD unreachable since …', … }
 */
export async function nvdStatus(db: Db, enabled: boolean) {
  if (!enabled) return { state: 'disabled' as const, message: 'NVD enrichment is disabled (NVD_ENABLED=false)' };
  const row = await loadIntegrationStatus(db, 'nvd');
  if (row === null) return { state: 'unknown' as const, message: 'NVD not contacted yet' };
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    state: row.state,
    since: iso(row.since),
    last_error: row.last_error,
    retry_at: iso(row.retry_at),
    failures: row.failures,
    message: row.message,
    updated_at: iso(row.updated_at),
  };
}

/**
 * Whether UYUNI sync is configured, the running sync's progress (null when idle), the last run,
 * and NVD enrichment's state (`nvdStatus`).
 * @example
 * const { configured, running, last_run, nvd } = await syncStatus(db, sync, true);
 */
export async function syncStatus(db: Db, sync: UyuniSync | undefined, nvdEnabled: boolean) {
  const last = await lastSyncRun(db);
  return {
    configured: sync !== undefined,
    running: sync?.running ?? null,
    last_run: last,
    nvd: await nvdStatus(db, nvdEnabled),
  };
}

/**
 * The cache totals and the counts per OS, advisory type and severity.
 * @example
 * const { total, by_os } = await errataCacheStats(db);
 */
export async function errataCacheStats(db: Db) {
  const rows = await countErrataByKind(db);
  const sum = (key: 'target_os' | 'advisory_type' | 'severity') => {
    const counts: Record<string, number> = {};
    for (const r of rows as readonly ErrataKindCount[]) counts[r[key]] = (counts[r[key]] ?? 0) + r.n;
    return counts;
  };
  const totals = await readErrataCacheTotals(db);
  return { ...totals, by_os: sum('target_os'), by_type: sum('advisory_type'), by_severity: sum('severity') };
}
