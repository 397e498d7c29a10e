/**
 * NVD enrichment run: fetch every CVE the errata cache references and NVD has not answered yet
 * (a CVE is fetched once), cache each answer, then raise errata severities to their worst CVE.
 * Throttling or an unreachable NVD stops this run early (the rest waits for the next one); it never
 * blocks or fails a sync. An unreachable NVD (air-gapped sites) is logged once, when it becomes
 * unreachable, not per CVE or per run: the client then backs off (`NvdClient.status()` says "NVD
 * unreachable since …") and the severities keep the UYUNI mapping; its return is logged once too.
 */
import { saveIntegrationStatus } from '../../persistence/sql/integrationStatus.ts';
import { coerceError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../persistence/db.ts';
import { applyNvdSeverity, saveCveScore, uncachedCves } from '../../persistence/sql/cves.ts';
import { NvdUnreachableError, type NvdClient } from './client.ts';
import { isTransient } from '../../transient.ts';

export interface EnrichResult {
  fetched: number;
  notFound: number;
  errataUpdated: number;
  stoppedEarly: string | null;
}

/** Severities are applied every `applyEvery` CVEs, so a long rate-limited run shows results as it goes. */
export async function enrichFromNvd(
  db: Db,
  nvd: NvdClient,
  logger: Logger,
  opts: { maxCves?: number; signal?: AbortSignal; applyEvery?: number } = {},
): Promise<EnrichResult> {
  const cves = await uncachedCves(db, opts.maxCves ?? 10_000);
  let fetched = 0;
  let notFound = 0;
  let stoppedEarly: string | null = null;
  let errataUpdated = 0;
  const applyEvery = opts.applyEvery ?? 10;
  const before = nvd.status();
  for (const cve of cves) {
    if (opts.signal?.aborted) {
      stoppedEarly = 'aborted';
      break;
    }
    try {
      const score = await nvd.fetchScore(cve);
      await saveCveScore(db, score);
      // A long run (thousands of CVEs at NVD's rate) shows "reachable since" as soon as it is.
      if (fetched === 0 && before.state !== 'reachable') await saveIntegrationStatus(db, 'nvd', nvd.status());
      fetched++;
      if (!score.found) notFound++;
      if (fetched % applyEvery === 0) errataUpdated += await applyNvdSeverity(db);
    } catch (raw) {
      const err = coerceError(raw);
      if (err instanceof NvdUnreachableError) {
        stoppedEarly = err.message;
        const now = nvd.status();
        if (before.state !== 'unreachable')
          logger.warn(
            { err: now.lastError, since: now.since, retryAt: now.retryAt },
            'NVD unreachable: severity enrichment paused, severities keep the UYUNI mapping; retrying with backoff',
          );
        else logger.debug({ status: now.message }, 'NVD still unreachable');
        break;
      }
      if (isTransient(err)) {
        stoppedEarly = err.message;
        logger.warn({ cve, err: err.message }, 'NVD enrichment paused until the next run');
        break;
      }
      logger.warn({ cve, err: err.message }, 'NVD answer for this CVE was unusable; skipped');
    }
  }
  const after = nvd.status();
  if (before.state === 'unreachable' && after.state === 'reachable')
    logger.info({ unreachableSince: before.since }, 'NVD reachable again: severity enrichment resumed');
  // Every replica's /sync/status and /health/detail show it (enrichment runs on the sync leader).
  if (after.state !== 'unknown') await saveIntegrationStatus(db, 'nvd', after);
  errataUpdated += await applyNvdSeverity(db);
  return { fetched, notFound, errataUpdated, stoppedEarly };
}
