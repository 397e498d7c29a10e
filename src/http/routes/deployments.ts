/**
 * Production deployments, rollbacks, test lanes and notifications (design §8, §12 L6–L7).
 * Reads come from the database; every change goes through the entry's actor (so it is journalled,
 * fenced and answered only once committed): START_DEPLOYMENT, ROLLBACK (after the last wave) and
 * FORCE_ROLLBACK (a halted or failed deployment waiting for a human).
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import type { ActorHost } from '../../machines/host.ts';
import { findRollback, listDeployments, listNotifications } from '../../persistence/sql/deployments.ts';
import type { TestLanes } from '../../scheduler/lanes.ts';
import type { RollbackRunner } from '../../scheduler/rollbacks.ts';
import { requestRollback, startDeployment } from '../../services/commands/deployments.ts';
import { redactNotification } from '../../services/views/notificationView.ts';
import { deploymentDetail } from '../../services/views/deploymentView.ts';
import { eventMeta, type ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readId, readJson, readQuery, reasonField, systemIdField } from '../validate.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

/** What the deployment routes need besides the base dependencies. */
export interface DeploymentDeps extends BaseDeps {
  actors: ActorHost;
  lanes?: TestLanes | undefined;
  /** Runs rollbacks of deployments whose entry completed (absent: no test engine). */
  rollbacks?: RollbackRunner | undefined;
}

const DEPLOYMENT_STATUSES = [
  'pending',
  'scheduled',
  'in_progress',
  'completed',
  'partial_failure',
  'halted',
  'failed',
  'rolled_back',
] as const;
const deploymentsQuery = z.object({
  status: z.enum(DEPLOYMENT_STATUSES).optional(),
  errata_id: z.string().max(100).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
const rollbackBody = z
  .object({
    type: z.enum(['package', 'system']),
    systems: z.array(systemIdField).min(1).max(100_000).optional(),
    reason: reasonField,
  })
  .strict();
const rollbackByIdBody = rollbackBody.extend({ deployment_id: z.number().int().positive() }).strict();
const notificationsQuery = z.object({
  status: z.enum(['pending', 'sent', 'failed']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

async function listDeploymentsPage(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const q = readQuery(c, deploymentsQuery);
  const { items, total } = await listDeployments(deps.db, q);
  return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
}

async function getDeployment(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const id = readId(c);
  const detail = await deploymentDetail(deps.db, id);
  if (!detail) throw new AppError(404, 'not_found', `deployment ${id} does not exist`);
  return c.json(toApi(detail));
}

async function startDeploymentNow(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const id = readId(c);
  await readJson(c, z.object({}).strict());
  return c.json(await startDeployment(deps, id, eventMeta(c, deps, { status: 202 })), 202);
}

async function rollBackDeployment(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const id = readId(c);
  const body = await readJson(c, rollbackBody);
  return c.json(await requestRollback(deps, id, body, eventMeta(c, deps, { status: 202 })), 202);
}

async function rollBackByBody(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const { deployment_id, ...body } = await readJson(c, rollbackByIdBody);
  return c.json(await requestRollback(deps, deployment_id, body, eventMeta(c, deps, { status: 202 })), 202);
}

async function getRollback(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const id = readId(c);
  const r = await findRollback(deps.db, id);
  if (!r) throw new AppError(404, 'not_found', `rollback ${id} does not exist`);
  return c.json(toApi(r));
}

function getLanes(c: Context<ApiEnv>, deps: DeploymentDeps) {
  return c.json({
    enabled: deps.lanes !== undefined,
    error: deps.lanes?.lastError ?? null,
    lanes: deps.lanes?.states() ?? [],
  });
}

async function listNotificationsPage(c: Context<ApiEnv>, deps: DeploymentDeps) {
  const q = readQuery(c, notificationsQuery);
  const rows = await listNotifications(deps.db, q);
  // A webhook URL is a credential (Slack, Teams): only an admin sees it, here and in errors.
  const items = c.get('principal').role === 'admin' ? rows : rows.map(redactNotification);
  return c.json({ items: toApi(items) });
}

export const DEPLOYMENTS: Endpoint<DeploymentDeps>[] = [
  ['GET', '/deployments', 'viewer', listDeploymentsPage],
  ['GET', '/deployments/:id', 'viewer', getDeployment],
  ['POST', '/deployments/:id/start', 'approver', startDeploymentNow],
  ['POST', '/deployments/:id/rollback', 'approver', rollBackDeployment],
  ['POST', '/rollback', 'approver', rollBackByBody],
  ['GET', '/rollback/:id', 'viewer', getRollback],
  ['GET', '/lanes', 'viewer', getLanes],
  ['GET', '/notifications', 'viewer', listNotificationsPage],
];

/**
 * The deployments, rollbacks, lanes and notifications endpoints.
 * @example
 * createApp(deps, [deploymentRoutes({ ...deps, actors: host, lanes, rollbacks })]);
 */
export function deploymentRoutes(deps: DeploymentDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, DEPLOYMENTS);
}
