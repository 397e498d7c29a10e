/** The dashboard's stylesheet and script (the CSP allows nothing inline), cached for five minutes. */
import type { Hono } from 'hono';
import { APP_CSS, APP_JS } from '../static.ts';

const CACHE = 'max-age=300';

/**
 * Mount `/ui/static/app.css` and `/ui/static/app.js`.
 * @example
 * assetRoutes(app);
 */
export function assetRoutes(app: Hono<any>): void {
  const css = { 'content-type': 'text/css; charset=utf-8', 'cache-control': CACHE };
  const js = { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': CACHE };
  app.get('/ui/static/app.css', (c) => c.body(APP_CSS, 200, css));
  app.get('/ui/static/app.js', (c) => c.body(APP_JS, 200, js));
}
