/**
 * `GET /metrics`: the Prometheus text format (docs/metrics.md), outside `/api/v1` like the
 * dashboard, next to it on the daemon's port. Open unless `METRICS_TOKEN` is set; then only
 * `Authorization: Bearer <METRICS_TOKEN>` is answered (Prometheus: `authorization.credentials_file`).
 * API tokens are not accepted here: a scraper needs no role, and an API token in a Prometheus
 * configuration would be one more secret able to act on patches.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Hono } from 'hono';
import type { BaseDeps } from '../../interfaces.ts';
import type { OrchestratorMetrics } from '../../services/metrics.ts';
import type { AppEnv } from '../app.ts';
import { errorResponse } from '../errors.ts';

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * Mount `GET /metrics` on the root application (an `extras` entry of `createApp`).
 * @example createApp(deps, routes, [metricsRoutes({ ...deps, metrics })]);
 */
export function metricsRoutes(deps: BaseDeps & { metrics: OrchestratorMetrics }): (app: Hono<AppEnv>) => void {
  const { token } = deps.config.metrics;
  const loopback = /^(127\.|::1$|localhost$)/.test(deps.config.http.host);
  if (!token && !loopback)
    deps.logger.warn(
      { host: deps.config.http.host },
      'GET /metrics is open on a non-loopback address: set METRICS_TOKEN to require a bearer token',
    );
  return (app) => {
    app.get('/metrics', async (c) => {
      if (token && !tokenMatches(c.req.header('authorization'), token)) {
        return errorResponse(c, 401, 'unauthorized', 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>', null, {
          'WWW-Authenticate': 'Bearer realm="spm-orchestrator metrics"',
        });
      }
      const text = await deps.metrics.render();
      return c.body(text, 200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' });
    });
  };
}
