/**
 * Production deployments, rollbacks, test lanes and notifications (design §8, §12 L6–L7).
 * Reads come from the database; every change goes through the entry's actor (so it is journalled,
 * fenced and answered only once committed): START_DEPLOYMENT, ROLLBACK (after the last wave) and
 * FORCE_ROLLBACK (a halted or failed deployment waiting for a human).
 */
import type { Context, Hono } from 'hono';
import { sql } from 'slonik';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import type { ActorHost } from '../../machines/host.ts';
import type { TestLanes } from '../../scheduler/lanes.ts';
import type { RollbackRunner } from '../../scheduler/rollbacks.ts';
import { loadMaintenanceWindows, loadRolloutPolicy } from '../../services/settings.ts';
import { openWindow, windowsFor } from '../../services/windows.ts';
import { requireRole } from '../auth.ts';
import type { ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readId, readJson, readQuery } from '../validate.ts';
import { meta } from './queue.ts';

export interface DeploymentDeps extends BaseDeps {
  actors: ActorHost;
  lanes?: TestLanes | undefined;
  /** Runs rollbacks of deployments whose entry completed (absent: no test engine). */
  rollbacks?: RollbackRunner | undefined;
}

const DEPLOYMENT_STATUSES = ['pending', 'scheduled', 'in_progress', 'completed', 'partial_failure', 'halted', 'failed', 'rolled_back'] as const;
const rollbackBody = z.object({
  type: z.enum(['package', 'system']),
  systems: z.array(z.number().int().positive()).min(1).max(100_000).optional(),
  reason: z.string().trim().min(1, 'reason is required').max(2000),
}).strict();

const entryState = z.object({ id: z.number(), status: z.string(), state_value: z.unknown(), attention_phase: z.string().nullable() });

export function deploymentRoutes(deps: DeploymentDeps) {
  const deploymentOr404 = async (id: number) => {
    const d = await deps.db.maybeOne(sql.unsafe`SELECT * FROM patch_deployments WHERE id = ${id}`);
    if (!d) throw new AppError(404, 'not_found', `deployment ${id} does not exist`);
    return d as Record<string, unknown> & { queue_id: number; waves: { group: string }[] };
  };
  const entryOf = (queueId: number) =>
    deps.db.one(sql.type(entryState)`SELECT id, status, state_value, snapshot->'context'->'attention'->>'phase' AS attention_phase FROM patch_test_queue WHERE id = ${queueId}`);

  /** Send the rollback to the entry in the state that accepts it. */
  async function rollback(c: Context<ApiEnv>, deploymentId: number, body: z.infer<typeof rollbackBody>) {
    const d = await deploymentOr404(deploymentId);
    const entry = await entryOf(d.queue_id);
    const m = meta(c, deps);
    const common = { by: m.actor, reason: body.reason, rollbackType: body.type, ...(body.systems ? { systems: body.systems } : {}) };
    if (body.systems) {
      const known = await deps.db.anyFirst(sql.type(z.object({ system_id: z.number() }))`SELECT system_id FROM patch_deployment_systems WHERE deployment_id = ${deploymentId} AND system_id = ANY(${sql.array(body.systems, 'int4')})`);
      const unknown = body.systems.filter((s) => !known.includes(s));
      if (unknown.length > 0) throw new AppError(400, 'validation_failed', `systems not in deployment ${deploymentId}: ${unknown.join(', ')}`, [{ path: 'systems', message: 'not in this deployment' }]);
    }
    if (entry.status === 'completed') {
      // The entry's actor is final: the rollback runs as a durable job (a patch_rollbacks row).
      if (!deps.rollbacks) throw new AppError(503, 'engine_unavailable', 'rollbacks need the test engine (UYUNI_URL and SALT_API_URL)');
      const systems = body.systems ?? await deps.db.anyFirst(sql.type(z.object({ system_id: z.number() }))`
        SELECT system_id FROM patch_deployment_systems WHERE deployment_id = ${deploymentId} AND status IN ('succeeded', 'failed', 'rollback_failed') ORDER BY system_id`);
      if (systems.length === 0) throw new AppError(409, 'nothing_to_roll_back', `deployment ${deploymentId} has no applied system to roll back`);
      const running = await deps.db.maybeOneFirst(sql.type(z.object({ id: z.number() }))`SELECT id FROM patch_rollbacks WHERE deployment_id = ${deploymentId} AND status = 'in_progress' LIMIT 1`);
      if (running !== null) throw new AppError(409, 'rollback_in_progress', `rollback ${running} of deployment ${deploymentId} is still running`, { rollback_id: running });
      const d = await deps.db.one(sql.type(z.object({ errata_id: z.string(), n: z.number() }))`
        SELECT errata_id, (SELECT count(*)::int FROM patch_rollbacks WHERE deployment_id = ${deploymentId}) AS n FROM patch_deployments WHERE id = ${deploymentId}`);
      const id = await deps.db.oneFirst(sql.type(z.object({ id: z.number() }))`
        INSERT INTO patch_rollbacks (deployment_id, queue_id, errata_id, rollback_type, target_systems, reason, initiated_by, effect_key)
        VALUES (${deploymentId}, ${entry.id}, ${d.errata_id}, ${body.type}, ${sql.array(systems, 'int4')}, ${body.reason}, ${m.actor}, ${`rb:${deploymentId}:${d.n + 1}`})
        RETURNING id`);
      deps.rollbacks.nudge();
      return c.json({ deployment_id: deploymentId, queue_id: entry.id, rollback_id: id, status: 'in_progress' }, 202);
    }
    let res;
    if (entry.status === 'prod_applied') res = await deps.actors.send(entry.id, { type: 'ROLLBACK', ...common }, m);
    else if (entry.status === 'needs_attention' && (entry.attention_phase === 'prod' || entry.attention_phase === 'prod_rollback')) res = await deps.actors.send(entry.id, { type: 'FORCE_ROLLBACK', ...common }, m);
    else throw new AppError(409, 'invalid_state', `deployment ${deploymentId} cannot be rolled back while its entry is ${entry.status}: a rollback is possible after the last wave (prod_applied, completed) or when the deployment halted or failed (needs_attention)`, { status: entry.status });
    return c.json({ deployment_id: deploymentId, queue_id: entry.id, ...res }, 202);
  }

  return (api: Hono<ApiEnv>) => {
    api.get('/deployments', requireRole('viewer'), async (c) => {
      const q = readQuery(c, z.object({
        status: z.enum(DEPLOYMENT_STATUSES).optional(), errata_id: z.string().max(100).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100), offset: z.coerce.number().int().min(0).default(0),
      }));
      const where = sql.fragment`WHERE (${q.status ?? null}::text IS NULL OR status = ${q.status ?? null}) AND (${q.errata_id ?? null}::text IS NULL OR errata_id = ${q.errata_id ?? null})`;
      const items = await deps.db.any(sql.unsafe`SELECT * FROM patch_deployments ${where} ORDER BY id DESC LIMIT ${q.limit} OFFSET ${q.offset}`);
      const total = await deps.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM patch_deployments ${where}`);
      return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
    });

    api.get('/deployments/:id', requireRole('viewer'), async (c) => {
      const id = readId(c);
      const d = await deploymentOr404(id);
      const systems = await deps.db.any(sql.unsafe`SELECT * FROM patch_deployment_systems WHERE deployment_id = ${id} ORDER BY wave, system_id`);
      const rollbacks = await deps.db.any(sql.unsafe`SELECT * FROM patch_rollbacks WHERE deployment_id = ${id} ORDER BY id`);
      return c.json(toApi({ ...d, systems, rollbacks }));
    });

    api.post('/deployments/:id/start', requireRole('approver'), async (c) => {
      const id = readId(c);
      await readJson(c, z.object({}).strict());
      const d = await deploymentOr404(id);
      const entry = await entryOf(d.queue_id);
      const sv = entry.state_value as { prod_pending?: string } | null;
      if (sv?.prod_pending !== 'awaiting_window') throw new AppError(409, 'invalid_state', `deployment ${id} is not waiting for its window (entry is ${entry.status})`, { status: entry.status });
      const group = d.waves.find((_, i) => i >= Number(d.current_wave ?? 0))?.group ?? null;
      const policy = await loadRolloutPolicy(deps.db);
      const open = openWindow(windowsFor(await loadMaintenanceWindows(deps.db), group), Date.now(), policy.min_window_remaining_minutes * 60_000);
      if (!open) throw new AppError(409, 'outside_window', `the maintenance window of ${group ?? 'this deployment'} is not open (or ends within ${policy.min_window_remaining_minutes} min): a deployment may only be started inside a window`);
      const m = meta(c, deps);
      return c.json({ deployment_id: id, ...(await deps.actors.send(entry.id, { type: 'START_DEPLOYMENT', by: m.actor }, m)) }, 202);
    });

    api.post('/deployments/:id/rollback', requireRole('approver'), async (c) => rollback(c as unknown as Context<ApiEnv>, readId(c), await readJson(c, rollbackBody)));

    api.post('/rollback', requireRole('approver'), async (c) => {
      const body = await readJson(c, rollbackBody.extend({ deployment_id: z.number().int().positive() }).strict());
      const { deployment_id, ...rest } = body;
      return rollback(c as unknown as Context<ApiEnv>, deployment_id, rest);
    });

    api.get('/rollback/:id', requireRole('viewer'), async (c) => {
      const id = readId(c);
      const r = await deps.db.maybeOne(sql.unsafe`SELECT * FROM patch_rollbacks WHERE id = ${id}`);
      if (!r) throw new AppError(404, 'not_found', `rollback ${id} does not exist`);
      return c.json(toApi(r));
    });

    api.get('/lanes', requireRole('viewer'), async (c) => c.json({ enabled: deps.lanes !== undefined, error: deps.lanes?.lastError ?? null, lanes: deps.lanes?.states() ?? [] }));

    api.get('/notifications', requireRole('viewer'), async (c) => {
      const q = readQuery(c, z.object({ status: z.enum(['pending', 'sent', 'failed']).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }));
      const items = await deps.db.any(sql.unsafe`SELECT id, type, errata_id, queue_id, recipient, channel, subject, status, attempts, created_at, sent_at, error_message
        FROM orchestrator_notifications WHERE (${q.status ?? null}::text IS NULL OR status = ${q.status ?? null}) ORDER BY id DESC LIMIT ${q.limit}`);
      return c.json({ items: toApi(items) });
    });
  };
}
