/**
 * Queue, approvals, tests and inspection routes. State changes go through the actor host and are
 * answered only after the transition is committed; reads come from the database. The approvals and
 * tests endpoints live in `approvals.ts` and `tests.ts`; `queueRoutes` mounts all three lists.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import type { ActorHost } from '../../machines/host.ts';
import { STATUSES, TARGET_OS, type Settings } from '../../machines/patch.machine.ts';
import type { Clock } from '../../persistence/clock.ts';
import { listQueue, queueStats } from '../../persistence/sql/queue.ts';
import { productionLockOf } from '../../persistence/sql/rollout.ts';
import { productionReason, sendOperatorEvent as sendEvent } from '../../services/commands/operatorEvents.ts';
import { editQueueEntry } from '../../services/commands/queueEntries.ts';
import { queueErrata, type QueueServiceDeps } from '../../services/queue.ts';
import { entryInspection, entryTransitions, queueEntryDetail } from '../../services/views/queueView.ts';
import { eventMeta, type ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { optionalReasonField, readId, readJson, readQuery, reasonField, systemIdField } from '../validate.ts';
import { APPROVALS } from './approvals.ts';
import { mountEndpoints, type Elevation, type Endpoint, type Handler } from './endpoints.ts';
import { TESTS } from './tests.ts';

/** What the queue, approvals and tests routes need besides the base dependencies. */
export interface QueueDeps extends BaseDeps {
  actors: ActorHost;
  clock: Clock;
  /** Settings for new entries (from `orchestrator_config.test_thresholds`). */
  settings: () => Promise<Settings>;
  /** Whether tests can run (integrations or the lab are wired); else `POST /tests/start` answers 503. */
  testEngine: { available: boolean; reason: string | null };
  /** Risk profiles for errata being queued (UYUNI packages); absent = stored scores. */
  profile?: QueueServiceDeps['profile'];
}

const SEVERITIES = ['Critical', 'High', 'Medium', 'Low', 'Unknown'] as const;
const score = z.coerce.number().int().min(0).max(100).optional();
const listQuery = z.object({
  status: z
    .string()
    .optional()
    .transform((s) => (s ? s.split(',') : undefined))
    .pipe(z.array(z.enum(STATUSES)).optional()),
  target_os: z.enum(TARGET_OS).optional(),
  severity: z.enum(SEVERITIES).optional(),
  q: z.string().trim().min(1).max(100).optional(),
  min_score: score,
  max_score: score,
  sort: z.enum(['score', 'oldest', 'newest', 'errata', 'severity']).default('score'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
});
const priority = z.number().int().min(-1000).max(1000);
const queueBody = z
  .object({
    errata_ids: z.array(z.string().trim().min(1).max(100)).min(1).max(1000).optional(),
    errata_id: z.string().trim().min(1).max(100).optional(),
    priority: priority.default(0),
    notes: z.string().max(4000).optional(),
  })
  .strict()
  .refine((b) => (b.errata_ids === undefined) !== (b.errata_id === undefined), {
    message: 'give errata_id or errata_ids',
    path: ['errata_ids'],
  });
const editBody = z
  .object({
    priority_override: priority.nullable().optional(),
    notes: z.string().max(4000).nullable().optional(),
  })
  .strict()
  .refine((b) => b.priority_override !== undefined || b.notes !== undefined, {
    message: 'give priority_override and/or notes',
  });

const noSuchEntry = (id: number) => new AppError(404, 'not_found', `queue entry ${id} does not exist`);

async function listEntries(c: Context<ApiEnv>, deps: QueueDeps) {
  const q = readQuery(c, listQuery);
  const { items, total } = await listQueue(deps.db, q);
  return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
}

async function queueNewErrata(c: Context<ApiEnv>, deps: QueueDeps) {
  const body = await readJson(c, queueBody);
  const ids = [...new Set(body.errata_ids ?? [body.errata_id ?? ''])];
  const results = await queueErrata(
    deps,
    ids,
    { priority: body.priority, notes: body.notes ?? null },
    eventMeta(c, deps, { status: 201 }),
  );
  const queued = results.filter((r) => r.queued).length;
  return c.json({ queued, results }, queued > 0 ? 201 : 409);
}

async function getQueueStats(c: Context<ApiEnv>, deps: QueueDeps) {
  return c.json(await queueStats(deps.db));
}

async function getEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const v = await queueEntryDetail(deps, id);
  if (!v) throw noSuchEntry(id);
  // Production: the deployment's wait for a busy production group (one deployment per group), the groups it holds.
  const lock = await productionLockOf(deps.db, id);
  return c.json({
    entry: toApi(v.entry),
    errata: toApi(v.errata),
    risk_profile: toApi(v.risk_profile),
    tests: toApi(v.tests),
    judgement: v.judgement,
    state: v.state,
    allowed_events: v.allowed_events,
    approval: v.approval,
    production:
      lock === null
        ? null
        : { deployment_id: lock.deployment_id, waiting_for: lock.wait_reason, holds_groups: lock.holds },
  });
}

async function editEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const body = await readJson(c, editBody);
  const entry = await editQueueEntry(deps.db, id, body, eventMeta(c, deps).audit);
  if (!entry) throw noSuchEntry(id);
  return c.json({ entry: toApi(entry) });
}

async function removeEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const m = eventMeta(c, deps);
  const res = await deps.actors.send(id, { type: 'REMOVE', by: m.actor }, m);
  return c.json({ id, ...res });
}

async function getEntryHistory(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const transitions = await entryTransitions(deps.db, id);
  if (!transitions) throw noSuchEntry(id);
  return c.json({ id, transitions: toApi(transitions) });
}

async function inspectEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const inspection = await entryInspection(deps, id);
  if (!inspection) throw noSuchEntry(id);
  return c.json(inspection);
}

type OperatorEventType = 'RETRY' | 'MARK_FAILED' | 'FORCE_ROLLBACK';

/** RETRY (optional note), MARK_FAILED and FORCE_ROLLBACK (reason required) on an entry that needs attention. */
function sendOperatorEvent(type: OperatorEventType, needsReason: boolean): Handler<QueueDeps> {
  const body = z
    .object({
      reason: needsReason ? reasonField : optionalReasonField,
      rollback_type: z.enum(['package', 'system']).optional(),
      systems: z.array(systemIdField).max(10_000).optional(),
    })
    .strict();
  return async function sendOperatorEvent(c, deps) {
    const id = readId(c);
    const b = await readJson(c, body);
    const m = eventMeta(c, deps);
    const by = m.actor;
    const ev =
      type === 'FORCE_ROLLBACK'
        ? {
            type,
            by,
            reason: b.reason ?? '',
            ...(b.rollback_type ? { rollbackType: b.rollback_type } : {}),
            ...(b.systems ? { systems: b.systems } : {}),
          }
        : type === 'MARK_FAILED'
          ? { type, by, reason: b.reason ?? '' }
          : { type, by, ...(b.reason ? { reason: b.reason } : {}) };
    return c.json({ id, ...(await sendEvent(deps, id, ev as never, m)) });
  };
}

/**
 * The approver role for an operator event that touches production (services/commands/operatorEvents.ts):
 * a system-level rollback, or an entry in its production phase.
 */
const productionAffecting = (what: string): Elevation<QueueDeps> => ({
  role: 'approver',
  rule: `${what} of an entry in its production phase${what === 'force-rollback' ? ', or with rollback_type system' : ''}`,
  when: async (c, deps) => {
    let rollbackType: string | undefined;
    try {
      // The text, not c.req.json(): Hono caches it for the handler's readJson (a failed json() would be cached too).
      const b = JSON.parse(await c.req.text()) as { rollback_type?: unknown } | null;
      rollbackType = typeof b?.rollback_type === 'string' ? b.rollback_type : undefined;
    } catch {
      rollbackType = undefined; // not JSON: the handler answers 400/415
    }
    const id = Number(c.req.param('id'));
    return Number.isSafeInteger(id) && id > 0 ? productionReason(deps, id, { rollbackType }) : null;
  },
});

export const QUEUE: Endpoint<QueueDeps>[] = [
  ['GET', '/queue', 'viewer', listEntries],
  ['POST', '/queue', 'operator', queueNewErrata],
  ['GET', '/queue/stats', 'viewer', getQueueStats],
  ['GET', '/queue/:id', 'viewer', getEntry],
  ['PATCH', '/queue/:id', 'operator', editEntry],
  ['DELETE', '/queue/:id', 'operator', removeEntry],
  ['GET', '/queue/:id/history', 'viewer', getEntryHistory],
  ['GET', '/queue/:id/inspect', 'viewer', inspectEntry],
  ['POST', '/queue/:id/retry', 'operator', sendOperatorEvent('RETRY', false), productionAffecting('retry')],
  [
    'POST',
    '/queue/:id/mark-failed',
    'operator',
    sendOperatorEvent('MARK_FAILED', true),
    productionAffecting('mark-failed'),
  ],
  [
    'POST',
    '/queue/:id/force-rollback',
    'operator',
    sendOperatorEvent('FORCE_ROLLBACK', true),
    productionAffecting('force-rollback'),
  ],
];

/**
 * The queue, approvals and tests endpoints.
 * @example
 * createApp(deps, [queueRoutes({ ...deps, actors: host, clock, settings, testEngine })]);
 */
export function queueRoutes(deps: QueueDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, [...QUEUE, ...APPROVALS, ...TESTS]);
}
