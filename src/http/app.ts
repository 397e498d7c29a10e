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
import { healthRoutes } from './routes/health.ts';

export type AppEnv = ApiEnv;

/** Path prefixes that need a bearer token (everything under /api/v1 except health). */
export const PROTECTED_PATHS = ['/whoami', '/queue', '/queue/*', '/approvals/*', '/tests/*', '/sync/*', '/errata', '/errata/*', '/risk-profile', '/risk-profile/*',
  '/deployments', '/deployments/*', '/rollback', '/rollback/*', '/lanes', '/notifications', '/notifications/*', '/reports/*', '/config', '/config/*'];

/** A route module: mounted under `/api/v1`. */
export type RouteModule = (api: Hono<AppEnv>) => void;

/**
 * Build the application.
 * @example
 * const app = createApp(deps);
 * const res = await app.request('/api/v1/health');
 */
export function createApp(deps: BaseDeps, modules: RouteModule[] = [], extras: ((app: Hono<AppEnv>) => void)[] = []): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { logger } = deps;

  app.use(requestId({ limitLength: 200 }));
  app.use(async function accessLog(c, next) {
    const t0 = performance.now();
    await next();
    logger.info(
      { requestId: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - t0) * 10) / 10 },
      'request',
    );
  });
  app.use(methodNotAllowed({
    app,
    onMethodNotAllowed: (c, methods) =>
      errorResponse(c, 405, 'method_not_allowed', `${c.req.method} is not allowed on ${c.req.path}`, { allow: methods }, { Allow: methods.join(', ') }),
  }));
  app.use(
    '/api/*',
    bodyLimit({
      maxSize: deps.config.http.bodyLimitBytes,
      onError: (c) => errorResponse(c, 413, 'payload_too_large', `request body exceeds ${deps.config.http.bodyLimitBytes} bytes`),
    }),
  );

  const api = new Hono<AppEnv>();
  healthRoutes(deps)(api);
  for (const p of PROTECTED_PATHS) api.use(p, authenticate(deps), idempotency(deps));
  api.get('/whoami', (c) => c.json({ name: c.get('principal').name, role: c.get('principal').role }));
  for (const mod of modules) mod(api);
  app.route('/api/v1', api);
  for (const extra of extras) extra(app);
  app.get('/', (c) => c.redirect('/ui', 302));

  app.notFound((c) => errorResponse(c, 404, 'not_found', `no route for ${c.req.method} ${c.req.path}`));
  app.onError(makeErrorHandler(logger));
  return app;
}
