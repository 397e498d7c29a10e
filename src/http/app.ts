/**
 * The Hono application: middleware (request id, access log, body limit, 404/405 envelope) and
 * the `/api/v1` routes. The app is built from explicit dependencies, so tests call `app.request()`.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { methodNotAllowed } from 'hono/method-not-allowed';
import { requestId } from 'hono/request-id';
import type { BaseDeps } from '../interfaces.ts';
import { authenticate } from './auth.ts';
import type { ApiEnv } from './context.ts';
import { idempotency } from './idempotency.ts';
import { errorResponse, makeErrorHandler } from './errors.ts';
import { hostileInput } from './hostileInput.ts';
import { auditRoutes } from './routes/audit.ts';
import { healthPing, healthRoutes } from './routes/health.ts';
import { whoamiRoutes } from './routes/whoami.ts';

export type AppEnv = ApiEnv;

/** A route module: mounted under `/api/v1`. */
export type RouteModule = (api: Hono<AppEnv>) => void;

/**
 * Build the application.
 * @example
 * const app = createApp(deps);
 * const res = await app.request('/api/v1/health');
 */
export function createApp(
  deps: BaseDeps,
  modules: RouteModule[] = [],
  extras: ((app: Hono<AppEnv>) => void)[] = [],
): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { logger } = deps;

  app.use(requestId({ limitLength: 200 }));
  app.use(async function accessLog(c, next) {
    const t0 = performance.now();
    await next();
    logger.info(
      {
        requestId: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round((performance.now() - t0) * 10) / 10,
      },
      'request',
    );
  });
  app.use(
    methodNotAllowed({
      app,
      onMethodNotAllowed: (c, methods) =>
        errorResponse(
          c,
          405,
          'method_not_allowed',
          `${c.req.method} is not allowed on ${c.req.path}`,
          { allow: methods },
          { Allow: methods.join(', ') },
        ),
    }),
  );
  app.use(
    hostileInput([deps.config.uiProxy?.userHeader, deps.config.uiProxy?.roleHeader, deps.config.uiProxy?.secretHeader]),
  );
  // Every route, the dashboard's sign-in included; the connection is closed so the rest of an
  // oversized upload is not read.
  app.use(
    bodyLimit({
      maxSize: deps.config.http.bodyLimitBytes,
      onError: (c) =>
        errorResponse(
          c,
          413,
          'payload_too_large',
          `request body exceeds ${deps.config.http.bodyLimitBytes} bytes`,
          null,
          { Connection: 'close' },
        ),
    }),
  );

  const api = new Hono<AppEnv>();
  // The ping is the only route before authentication; everything after it, listed or not, has a
  // principal. Registered once: a path matched by two registrations ran both (the idempotency
  // claim of the first made the second answer 409, and the request never ran).
  healthPing(deps)(api);
  api.use('*', authenticate(deps), idempotency(deps));
  for (const mod of [healthRoutes(deps), whoamiRoutes(deps), auditRoutes(deps), ...modules]) mod(api);
  app.route('/api/v1', api);
  for (const extra of extras) extra(app);
  app.get('/', (c) => c.redirect('/ui', 302));

  app.notFound((c) => errorResponse(c, 404, 'not_found', `no route for ${c.req.method} ${c.req.path}`));
  app.onError(makeErrorHandler(logger));
  return app;
}
