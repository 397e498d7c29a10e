/**
 * `spm_http_request_duration_seconds{route,method,status}` for every request the application
 * answers: the API, its health routes, the dashboard, `/metrics`, 404s and 405s.
 *
 * Registered as an `extras` entry of `createApp`, which runs after every route is registered: a
 * Hono middleware added there would only see the routes registered after it (Hono composes
 * handlers in registration order, and a route's handler answers without calling `next`). So this
 * wraps the application's `fetch` instead — which is what the HTTP server and `app.request()`
 * call — and names the route by asking the application's router which routes the request
 * matches: the last one that is not a middleware is the handler's pattern (`/api/v1/queue/:id`,
 * never the raw path, so the label's values stay the list of routes). A request no route matched
 * (404, 405) is `route="(unmatched)"`.
 */
import type { Hono } from 'hono';
import type { Histogram } from 'prom-client';
import type { AppEnv } from './app.ts';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The pattern of the route that answers `request`, as the application's router matches it. */
export function routePattern(app: Hono<AppEnv>, request: Request): string {
  try {
    // Hono answers HEAD with the GET route.
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    const [matches] = app.router.match(method, app.getPath(request));
    let wildcardFree: string | undefined;
    for (let i = matches.length - 1; i >= 0; i--) {
      const route = matches[i]![0][1];
      if (route.method !== 'ALL') return route.path;
      if (wildcardFree === undefined && !route.path.includes('*')) wildcardFree = route.path;
    }
    return wildcardFree ?? '(unmatched)';
  } catch {
    return '(unmatched)';
  }
}

/**
 * Time every request of `app` into `histogram`.
 * @example createApp(deps, routes, [..., measureRequests(metrics.httpDuration)]);
 */
export function measureRequests(histogram: Histogram<'route' | 'method' | 'status'>): (app: Hono<AppEnv>) => void {
  return (app) => {
    const inner = app.fetch;
    app.fetch = (async (request: Request, ...rest: unknown[]) => {
      const t0 = performance.now();
      let status = 500;
      try {
        const res = await (inner as (r: Request, ...a: unknown[]) => Response | Promise<Response>)(request, ...rest);
        status = res.status;
        return res;
      } finally {
        histogram.observe(
          {
            route: routePattern(app, request),
            method: METHODS.has(request.method) ? request.method : 'OTHER',
            status: String(status),
          },
          (performance.now() - t0) / 1000,
        );
      }
    }) as typeof app.fetch;
  };
}
