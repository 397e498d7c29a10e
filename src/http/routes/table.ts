/**
 * Every `/api/v1` route with the role it needs, in one list: the endpoint tables of the route
 * modules, without their handlers. docs/security.md's role matrix is this list;
 * test/security.matrix.test.ts checks the two against each other and against the running app.
 */
import { APPROVALS } from './approvals.ts';
import { AUDIT } from './audit.ts';
import { DEPLOYMENTS } from './deployments.ts';
import { routeRows, type RouteRow } from './endpoints.ts';
import { HEALTH, PUBLIC } from './health.ts';
import { QUEUE } from './queue.ts';
import { REPORTS } from './reports.ts';
import { RISK_PROFILE } from './riskProfile.ts';
import { SYNC } from './sync.ts';
import { TESTS } from './tests.ts';
import { WHOAMI } from './whoami.ts';

/** @example API_ROUTES.find((r) => r.path === '/rollback')?.role // 'approver' */
export const API_ROUTES: readonly RouteRow[] = [
  PUBLIC,
  HEALTH,
  WHOAMI,
  AUDIT,
  QUEUE,
  APPROVALS,
  TESTS,
  SYNC,
  RISK_PROFILE,
  DEPLOYMENTS,
  REPORTS,
].flatMap((list) => routeRows(list as never));
