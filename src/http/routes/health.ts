/**
 * `GET /health`: a fast liveness ping (no I/O), public (mounted before authentication).
 * `GET /health/detail`: every dependency probed in parallel, schema version, queue counts by
 * status — behind a viewer token (it names the dependencies and what they answered).
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

/** The only public endpoint of the API (mounted before authentication). */
export const PUBLIC: Endpoint<BaseDeps>[] = [['GET', '/health', null, getHealth]];

export const HEALTH: Endpoint<BaseDeps>[] = [['GET', '/health/detail', 'viewer', getHealthDetail]];

/**
 * The public ping (mounted before authentication).
 * @example
 * healthPing(deps)(api);
 */
export function healthPing(deps: BaseDeps): RouteModule {
  return (api) => mountEndpoints(api, deps, PUBLIC);
}

/**
 * The health detail (mounted after authentication).
 * @example
 * healthRoutes(deps)(api);
 */
export function healthRoutes(deps: BaseDeps): RouteModule {
  return (api) => mountEndpoints(api, deps, HEALTH);
}
