/** The answers of `GET /sync/status` and `GET /errata/cache/stats`. */
import type { Db } from '../../persistence/db.ts';
import { lastSyncRun } from '../../persistence/sql/errata.ts';
import { countErrataByKind, readErrataCacheTotals, type ErrataKindCount } from '../../persistence/sql/syncStatus.ts';
import type { UyuniSync } from '../uyuni/sync.ts';

/**
 * Whether UYUNI sync is configured, the running sync's progress (null when idle) and the last run.
 * @example
 * const { configured, running, last_run } = await syncStatus(db, sync);
 */
export async function syncStatus(db: Db, sync: UyuniSync | undefined) {
  const last = await lastSyncRun(db);
  return { configured: sync !== undefined, running: sync?.running ?? null, last_run: last };
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
