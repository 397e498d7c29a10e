/** The answer of `GET /health/detail`: every dependency probed in parallel, schema version, queue counts. */
import type { BaseDeps } from '../../interfaces.ts';
import { readSchemaVersion } from '../../persistence/sql/health.ts';
import { countEntriesByStatus } from '../../persistence/sql/queue.ts';
import { probeDatabase, probePrometheus, probeSalt, probeUyuni, type ProbeResult } from '../probes.ts';
import { nvdStatus } from './syncView.ts';

type Component = 'database' | 'uyuni' | 'salt' | 'prometheus' | 'nvd';

/** The body of `GET /health/detail`. */
export interface HealthDetail {
  status: 'healthy' | 'degraded' | 'unhealthy';
  version: string;
  instance: string;
  uptime_seconds: number;
  schema_version: number | null;
  components: Record<string, string>;
  component_details: Record<Component, ProbeResult>;
  queue_stats: Record<string, number>;
}

/**
 * Probe every dependency; read the schema version and queue counts only when the database answers.
 * `unhealthy` without a database, `degraded` when a configured dependency is unreachable.
 * @example
 * const detail = await healthDetail(deps);
 * return c.json(detail, detail.status === 'unhealthy' ? 503 : 200);
 */
export async function healthDetail(deps: BaseDeps): Promise<HealthDetail> {
  const [database, uyuni, salt, prometheus] = await Promise.all([
    probeDatabase(deps.db),
    probeUyuni(deps.config.uyuni),
    probeSalt(deps.config.salt),
    probePrometheus(deps.config.prometheus),
  ]);
  let queueStats: Record<string, number> = {};
  let schemaVersion: number | null = null;
  // NVD is not probed per request (rate limits, air-gapped sites): what enrichment last saw.
  let nvd: ProbeResult = deps.config.nvd.enabled
    ? { status: 'unknown', detail: 'NVD not contacted yet' }
    : { status: 'not configured' };
  if (database.status === 'connected') {
    queueStats = await countEntriesByStatus(deps.db);
    schemaVersion = await readSchemaVersion(deps.db);
    const n = await nvdStatus(deps.db, deps.config.nvd.enabled);
    if (n.state === 'unreachable') nvd = { status: 'unreachable', detail: n.message };
    else if (n.state === 'reachable') nvd = { status: 'connected', detail: n.message };
  }
  const probes = { database, uyuni, salt, prometheus, nvd };
  const configuredDown = Object.values(probes).some((p) => p.status === 'unreachable');
  const status = database.status !== 'connected' ? 'unhealthy' : configuredDown ? 'degraded' : 'healthy';
  return {
    status,
    version: deps.version,
    instance: deps.config.instanceId,
    uptime_seconds: Math.round((Date.now() - deps.startedAt) / 1000),
    schema_version: schemaVersion,
    components: Object.fromEntries(Object.entries(probes).map(([k, v]) => [k, v.status])),
    component_details: probes,
    queue_stats: queueStats,
  };
}
