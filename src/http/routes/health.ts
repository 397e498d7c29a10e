/**
 * `GET /health`: a fast liveness ping (no I/O). `GET /health/detail`: every dependency probed in
 * parallel, schema version, queue counts by status.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { BaseDeps } from '../../interfaces.ts';
import { probeDatabase, probePrometheus, probeSalt, probeUyuni } from '../../services/probes.ts';
import type { RouteModule } from '../app.ts';

export function healthRoutes(deps: BaseDeps): RouteModule {
  return (api) => {
    api.get('/health', (c) => {
      const uptime = Math.round((Date.now() - deps.startedAt) / 1000);
      if (deps.lifecycle.state !== 'running') {
        return c.json({ status: deps.lifecycle.state === 'starting' ? 'starting' : 'shutting_down', version: deps.version, uptime_seconds: uptime }, 503);
      }
      return c.json({ status: 'healthy', version: deps.version, uptime_seconds: uptime, instance: deps.config.instanceId });
    });

    api.get('/health/detail', async (c) => {
      const [database, uyuni, salt, prometheus] = await Promise.all([
        probeDatabase(deps.db),
        probeUyuni(deps.config.uyuni),
        probeSalt(deps.config.salt),
        probePrometheus(deps.config.prometheus),
      ]);
      let queueStats: Record<string, number> = {};
      let schemaVersion: number | null = null;
      if (database.status === 'connected') {
        const rows = await deps.db.any(sql.type(z.object({ status: z.string(), n: z.number() }))`
          SELECT status, count(*)::int AS n FROM patch_test_queue GROUP BY status ORDER BY status`);
        queueStats = Object.fromEntries(rows.map((r) => [r.status, r.n]));
        schemaVersion = await deps.db.oneFirst(sql.type(z.object({ v: z.number() }))`SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations`);
      }
      const deps4 = { database, uyuni, salt, prometheus };
      const configuredDown = Object.values(deps4).some((p) => p.status === 'unreachable');
      const status = database.status !== 'connected' ? 'unhealthy' : configuredDown ? 'degraded' : 'healthy';
      return c.json(
        {
          status,
          version: deps.version,
          instance: deps.config.instanceId,
          uptime_seconds: Math.round((Date.now() - deps.startedAt) / 1000),
          schema_version: schemaVersion,
          components: Object.fromEntries(Object.entries(deps4).map(([k, v]) => [k, v.status])),
          component_details: deps4,
          queue_stats: queueStats,
        },
        status === 'unhealthy' ? 503 : 200,
      );
    });
  };
}
