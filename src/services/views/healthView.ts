/** The answer of `GET /health/detail`: every dependency probed in parallel, schema version, queue counts. */
import type { BaseDeps } from '../../interfaces.ts';
import { readSchemaVersion } from '../../persistence/sql/health.ts';
import { countEntriesByStatus } from '../../persistence/sql/queue.ts';
import { probeDatabase, probePrometheus, probeSalt, probeUyuni, type ProbeResult } from '../probes.ts';

type Component = 'database' | 'uyuni' | 'salt' | 'prometheus';

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
  if (database.status === 'connected') {
    queueStats = await countEntriesByStatus(deps.db);
    schemaVersion = await readSchemaVersion(deps.db);
  }
  const probes = { database, uyuni, salt, prometheus };
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
