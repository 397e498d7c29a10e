/**
 * Sync and errata-cache routes: `POST /sync/trigger` (409 with the running sync's progress),
 * `GET /sync/status`, `GET /errata/cache/stats`, `GET /errata`.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import { listErrata } from '../../persistence/sql/syncStatus.ts';
import { SyncAlreadyRunning, type SyncReport, type UyuniSync } from '../../services/uyuni/sync.ts';
import { errataCacheStats, syncStatus } from '../../services/views/syncView.ts';
import type { ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readQuery } from '../validate.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

type SyncDeps = BaseDeps & {
  sync: UyuniSync | undefined;
  /** What runs after every sync (auto-queue, lanes, NVD), the poller's as well as this route's. */
  afterSync?: ((report: SyncReport) => Promise<void>) | undefined;
};

const errataQuery = z.object({
  target_os: z.enum(['ubuntu', 'debian', 'rhel']).optional(),
  severity: z.enum(['Critical', 'High', 'Medium', 'Low', 'Unknown']).optional(),
  advisory_type: z.enum(['Security Advisory', 'Bug Fix Advisory', 'Product Enhancement Advisory']).optional(),
  search: z.string().max(100).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

async function triggerSync(c: Context<ApiEnv>, deps: SyncDeps) {
  if (!deps.sync) {
    throw new AppError(
      503,
      'uyuni_not_configured',
      'UYUNI is not configured (set UYUNI_URL, UYUNI_USER, UYUNI_PASSWORD)',
    );
  }
  try {
    const report = await deps.sync.run('api', deps.afterSync ? { after: deps.afterSync } : {});
    return c.json(report, report.status === 'completed' ? 200 : 502);
  } catch (raw) {
    if (raw instanceof SyncAlreadyRunning)
      throw new AppError(409, 'sync_running', 'a sync is already running', { progress: raw.progress });
    throw raw;
  }
}

async function getSyncStatus(c: Context<ApiEnv>, deps: SyncDeps) {
  const status = await syncStatus(deps.db, deps.sync, deps.config.nvd.enabled);
  return c.json({ ...status, last_run: toApi(status.last_run) });
}

async function getErrataCacheStats(c: Context<ApiEnv>, deps: SyncDeps) {
  return c.json(toApi(await errataCacheStats(deps.db)));
}

async function getErrata(c: Context<ApiEnv>, deps: SyncDeps) {
  const q = readQuery(c, errataQuery);
  const { items, total } = await listErrata(deps.db, q);
  return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
}

export const SYNC: Endpoint<SyncDeps>[] = [
  ['POST', '/sync/trigger', 'operator', triggerSync],
  ['GET', '/sync/status', 'viewer', getSyncStatus],
  ['GET', '/errata/cache/stats', 'viewer', getErrataCacheStats],
  ['GET', '/errata', 'viewer', getErrata],
];

/**
 * The sync and errata-cache endpoints.
 * @example
 * createApp(deps, [syncRoutes({ ...deps, sync })]);
 */
export function syncRoutes(deps: SyncDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, SYNC);
}
