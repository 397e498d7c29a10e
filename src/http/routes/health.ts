/**
 * `GET /health`: a fast liveness ping (no I/O). `GET /health/detail`: every dependency probed in
 * parallel, schema version, queue counts by status. Both are public (mounted before authentication).
 */
import type { Context } from 'hono';
import type { BaseDeps } from '../../interfaces.ts';
import { healthDetail } from '../../services/views/healthView.ts';
import type { RouteModule } from '../app.ts';
import type { ApiEnv } from '../context.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

function getHealth(c: Context<ApiEnv>, deps: BaseDeps) {
  const uptime = Math.round((Date.now() - deps.startedAt) / 1000);
  if (deps.lifecycle.state !== 'running') {
    const status = deps.lifecycle.state === 'starting' ? 'starting' : 'shutting_down';
    return c.json({ status, version: deps.version, uptime_seconds: uptime }, 503);
  }
  return c.json({ status: 'healthy', version: deps.version, uptime_seconds: uptime, instance: deps.config.instanceId });
}

async function getHealthDetail(c: Context<ApiEnv>, deps: BaseDeps) {
  const detail = await healthDetail(deps);
  return c.json(detail, detail.status === 'unhealthy' ? 503 : 200);
}

const HEALTH: Endpoint<BaseDeps>[] = [
  ['GET', '/health', null, getHealth],
  ['GET', '/health/detail', null, getHealthDetail],
];

/**
 * The public health endpoints (mounted before authentication).
 * @example
 * healthRoutes(deps)(api);
 */
export function healthRoutes(deps: BaseDeps): RouteModule {
  return (api) => mountEndpoints(api, deps, HEALTH);
}
