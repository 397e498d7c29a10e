/**
 * NVD enrichment run: fetch every CVE the errata cache references and NVD has not answered yet
 * (a CVE is fetched once), cache each answer, then raise errata severities to their worst CVE.
 * Throttling or an unreachable NVD stops this run early (the rest waits for the next one); it never
 * blocks or fails a sync.
 */
import { coerceError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../persistence/db.ts';
import { applyNvdSeverity, saveCveScore, uncachedCves } from '../../persistence/sql/cves.ts';
import type { NvdClient } from './client.ts';

export interface EnrichResult {
  fetched: number;
  notFound: number;
  errataUpdated: number;
  stoppedEarly: string | null;
}

/** Severities are applied every `applyEvery` CVEs, so a long rate-limited run shows results as it goes. */
export async function enrichFromNvd(db: Db, nvd: NvdClient, logger: Logger, opts: { maxCves?: number; signal?: AbortSignal; applyEvery?: number } = {}): Promise<EnrichResult> {
  const cves = await uncachedCves(db, opts.maxCves ?? 10_000);
  let fetched = 0;
  let notFound = 0;
  let stoppedEarly: string | null = null;
  let errataUpdated = 0;
  const applyEvery = opts.applyEvery ?? 10;
  for (const cve of cves) {
    if (opts.signal?.aborted) {
      stoppedEarly = 'aborted';
      break;
    }
    try {
      const score = await nvd.fetchScore(cve);
      await saveCveScore(db, score);
      fetched++;
      if (!score.found) notFound++;
      if (fetched % applyEvery === 0) errataUpdated += await applyNvdSeverity(db);
    } catch (raw) {
      const err = coerceError(raw);
      if ((err as { transient?: boolean }).transient) {
        stoppedEarly = err.message;
        logger.warn({ cve, err: err.message }, 'NVD enrichment paused until the next run');
        break;
      }
      logger.warn({ cve, err: err.message }, 'NVD answer for this CVE was unusable; skipped');
    }
  }
  errataUpdated += await applyNvdSeverity(db);
  return { fetched, notFound, errataUpdated, stoppedEarly };
}
