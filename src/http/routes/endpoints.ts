/**
 * A route module is a list of small named handlers, each `(c, deps) => Response`, mounted by
 * `mountEndpoints` behind the role it needs. The list reads like the module's table of contents;
 * the order is the registration order (a literal path such as `/queue/stats` before `/queue/:id`).
 *
 * The role in the table is the only place a route's access is decided (docs/security.md is the
 * same table, checked by test/security.matrix.test.ts). A route that is production-affecting only
 * for some requests names that rule in the table too (`Elevation`): the request then needs the
 * higher role, decided here before its handler runs.
 */
import type { Context, Hono } from 'hono';
import { roleAtLeast, type Role } from '../../services/tokens.ts';
import { auditTarget, requireRole } from '../auth.ts';
import type { ApiEnv } from '../context.ts';
import { errorResponse } from '../errors.ts';

/** The HTTP methods the API uses. */
export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** One endpoint's work: validate the request, ask one service or query, serialise the answer. */
export type Handler<D> = (c: Context<ApiEnv>, deps: D) => Response | Promise<Response>;

/**
 * A request of the route that needs a higher role: `when` says why this one does (null: it does
 * not). It may read the body (Hono caches it for the handler) and the entry.
 */
export interface Elevation<D> {
  role: Role;
  /** One line for docs/security.md's notes: which requests need `role`. */
  rule: string;
  when: (c: Context<ApiEnv>, deps: D) => Promise<string | null>;
}

/** `[method, path, least role (null = public), handler, elevation?]`. */
export type Endpoint<D> = readonly [
  method: Method,
  path: string,
  role: Role | null,
  handler: Handler<D>,
  elevation?: Elevation<D>,
];

/**
 * Register endpoints on the `/api/v1` app, each behind `requireRole` unless it is public.
 * @param api the `/api/v1` sub-application
 * @param deps what every handler of the list receives
 * @param list the endpoints, in registration order
 * @example
 * mountEndpoints(api, deps, [['GET', '/queue/stats', 'viewer', getQueueStats]]);
 */
export function mountEndpoints<D>(api: Hono<ApiEnv>, deps: D, list: readonly Endpoint<D>[]): void {
  for (const [method, path, role, handler, elevation] of list) {
    const run = async (c: Context<ApiEnv>) => {
      if (elevation) {
        const p = c.get('principal');
        if (!roleAtLeast(p.role, elevation.role)) {
          const why = await elevation.when(c, deps);
          if (why !== null) {
            return errorResponse(
              c,
              403,
              'forbidden',
              `${why}: this needs the ${elevation.role} role; token ${p.name} has ${p.role}`,
              {
                required_role: elevation.role,
                role: p.role,
                reason: why,
              },
            );
          }
        }
      }
      return handler(c, deps);
    };
    if (role === null) {
      api.on(method, path, run);
      continue;
    }
    api.on(
      method,
      path,
      async function routeOf(c, next) {
        // The audit row names the route and what it acts on, whichever way it ends.
        const slot = c.get('audit');
        if (slot) {
          slot.record.action = `${method} ${path}`;
          const target = auditTarget(path, c.req.param() as Record<string, string>);
          if (target) slot.target = target;
        }
        await next();
      },
      requireRole(role),
      run,
    );
  }
}

/** A route as the role matrix sees it. */
export interface RouteRow {
  method: Method;
  path: string;
  role: Role | null;
  elevation: { role: Role; rule: string } | null;
}

/**
 * The table rows of endpoint lists, without their handlers (for the role matrix and its test).
 * @example routeRows(QUEUE) // [{ method: 'GET', path: '/queue', role: 'viewer', elevation: null }, …]
 */
export function routeRows(list: readonly Endpoint<never>[]): RouteRow[] {
  return list.map(([method, path, role, , e]) => ({
    method,
    path,
    role,
    elevation: e ? { role: e.role, rule: e.rule } : null,
  }));
}
