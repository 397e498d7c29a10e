/** `GET /whoami`: who the token (or the proxy sign-in) acts as, and its role. */
import type { Context, Hono } from 'hono';
import type { BaseDeps } from '../../interfaces.ts';
import type { ApiEnv } from '../context.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

function whoami(c: Context<ApiEnv>) {
  const p = c.get('principal');
  return c.json({ name: p.name, person: p.person, role: p.role, via: p.via });
}

export const WHOAMI: Endpoint<BaseDeps>[] = [['GET', '/whoami', 'viewer', whoami]];

/**
 * The whoami endpoint.
 * @example createApp(deps) // mounts it
 */
export function whoamiRoutes(deps: BaseDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, WHOAMI);
}
