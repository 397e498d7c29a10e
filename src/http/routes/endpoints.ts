/**
 * A route module is a list of small named handlers, each `(c, deps) => Response`, mounted by
 * `mountEndpoints` behind the role it needs. The list reads like the module's table of contents;
 * the order is the registration order (a literal path such as `/queue/stats` before `/queue/:id`).
 */
import type { Context, Hono } from 'hono';
import type { Role } from '../../services/tokens.ts';
import { requireRole } from '../auth.ts';
import type { ApiEnv } from '../context.ts';

/** The HTTP methods the API uses. */
export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** One endpoint's work: validate the request, ask one service or query, serialise the answer. */
export type Handler<D> = (c: Context<ApiEnv>, deps: D) => Response | Promise<Response>;

/** `[method, path, least role (null = public), handler]`. */
export type Endpoint<D> = readonly [method: Method, path: string, role: Role | null, handler: Handler<D>];

/**
 * Register endpoints on the `/api/v1` app, each behind `requireRole` unless it is public.
 * @param api the `/api/v1` sub-application
 * @param deps what every handler of the list receives
 * @param list the endpoints, in registration order
 * @example
 * mountEndpoints(api, deps, [['GET', '/queue/stats', 'viewer', getQueueStats]]);
 */
export function mountEndpoints<D>(api: Hono<ApiEnv>, deps: D, list: readonly Endpoint<D>[]): void {
  for (const [method, path, role, handler] of list) {
    const run = (c: Context<ApiEnv>) => handler(c, deps);
    if (role === null) api.on(method, path, run);
    else api.on(method, path, requireRole(role), run);
  }
}
