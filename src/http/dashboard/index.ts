/**
 * The operator dashboard, served by the daemon under `/ui` (server-rendered, no separate process,
 * works without internet). It is a client of the daemon's own API: every read and every decision
 * goes through `/api/v1` in-process (`app.request`) with the signed-in token, so validation, role
 * checks, the audit log and the actors' transitions are exactly the API's.
 *
 * Security: the session and CSRF guard are in `session.ts`; Content-Security-Policy allows no
 * inline script or style (`/ui/static/*` only, `layout.ts`); every value is escaped (`html.ts`).
 * Each page is a module under `pages/`; this file only wires them.
 */
import type { Hono } from 'hono';
import type { BaseDeps } from '../../interfaces.ts';
import { approvalPages } from './pages/approvals.ts';
import { assetRoutes } from './pages/assets.ts';
import { deploymentPages } from './pages/deployments.ts';
import { entryPages } from './pages/entry.ts';
import { inspectorPages } from './pages/inspector.ts';
import { loginPages } from './pages/login.ts';
import { queuePages } from './pages/queue.ts';
import { reportPages } from './pages/reports.ts';
import { syncPages } from './pages/sync.ts';
import { testPages } from './pages/tests.ts';
import { createSession } from './session.ts';

/**
 * Mount the dashboard on the root application (whose `/api/v1` it calls).
 * @example
 * createApp(deps, modules, [(root) => dashboardRoutes(deps, root)]);
 */
export function dashboardRoutes(deps: BaseDeps, app: Hono<any>): void {
  const session = createSession(deps, app);
  assetRoutes(app);
  loginPages(app, session);
  queuePages(app, session);
  reportPages(app, session);
  entryPages(app, session);
  approvalPages(app, session);
  testPages(app, session);
  deploymentPages(app, session);
  syncPages(app, session);
  inspectorPages(app, session);
}
