/**
 * Queue, approvals, tests and inspection routes. State changes go through the actor host and are
 * answered only after the transition is committed; reads come from the database.
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import { machineGraph } from '../../machines/graph.ts';
import type { ActorHost, EventMeta } from '../../machines/host.ts';
import { redactPayload } from '../../redact.ts';
import { acceptedOperatorEvents, patchMachine, stateLabel, STATUSES, TARGET_OS, type Settings } from '../../machines/patch.machine.ts';
import type { BaseDeps } from '../../interfaces.ts';
import type { Clock } from '../../persistence/clock.ts';
import { loadEntry, loadJournal } from '../../persistence/sql/entries.ts';
import {
  getErrata, getQueueItem, getRiskProfile, getTest, getTestPhases, listQueue, nextQueued, pendingApprovals, queueStats,
  testsOfEntry, updateQueueFields,
} from '../../persistence/sql/queue.ts';
import { queueErrata, type QueueServiceDeps } from '../../services/queue.ts';
import { requireRole } from '../auth.ts';
import { eventMeta, type ApiEnv } from '../context.ts';
import { readId, readJson, readQuery } from '../validate.ts';
import { toApi } from '../serialize.ts';
import type { Context } from 'hono';

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

const reason = z.string().trim().min(1, 'reason is required').max(2000);
const optionalReason = z.string().trim().max(2000).optional();
const snoozeBody = z
  .object({ reason, until: z.iso.datetime({ offset: true }).optional(), days: z.number().int().min(1).max(365).optional() })
  .strict()
  .refine((b) => (b.until === undefined) !== (b.days === undefined), { message: 'give exactly one of until (ISO-8601 date-time) or days (1–365)', path: ['until'] });

const meta = eventMeta;

function snoozeUntil(body: z.infer<typeof snoozeBody>, now: number): number {
  const until = body.until !== undefined ? Date.parse(body.until) : now + (body.days ?? 0) * 86_400_000;
  if (!(until > now)) throw new AppError(400, 'validation_failed', 'snooze until must be in the future', [{ path: 'until', message: 'must be in the future' }]);
  if (until > now + 366 * 86_400_000) throw new AppError(400, 'validation_failed', 'snooze until must be within a year', [{ path: 'until', message: 'must be within 366 days' }]);
  return until;
}

type Decision = { action: 'approve'; reason?: string | undefined } | { action: 'reject'; reason: string } | ({ action: 'snooze' } & z.infer<typeof snoozeBody>);

async function decide(deps: QueueDeps, id: number, d: Decision, m: EventMeta) {
  const by = m.actor;
  if (d.action === 'approve') return deps.actors.send(id, { type: 'APPROVE', by, ...(d.reason ? { reason: d.reason } : {}) }, m);
  if (d.action === 'reject') return deps.actors.send(id, { type: 'REJECT', by, reason: d.reason }, m);
  return deps.actors.send(id, { type: 'SNOOZE', by, reason: d.reason, until: snoozeUntil(d, deps.clock.now()) }, m);
}

export function queueRoutes(deps: QueueDeps) {
  return (api: Hono<ApiEnv>) => {
    // ---------------------------------------------------------------- queue
    api.get('/queue', requireRole('viewer'), async (c) => {
      const q = readQuery(c, z.object({
        status: z.string().optional().transform((s) => (s ? s.split(',') : undefined)).pipe(z.array(z.enum(STATUSES)).optional()),
        target_os: z.enum(TARGET_OS).optional(),
        severity: z.enum(['Critical', 'High', 'Medium', 'Low', 'Unknown']).optional(),
        q: z.string().trim().min(1).max(100).optional(),
        min_score: z.coerce.number().int().min(0).max(100).optional(),
        max_score: z.coerce.number().int().min(0).max(100).optional(),
        sort: z.enum(['score', 'oldest', 'newest', 'errata', 'severity']).default('score'),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        offset: z.coerce.number().int().min(0).max(10_000_000).default(0),
      }));
      const { items, total } = await listQueue(deps.db, q);
      return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
    });

    api.post('/queue', requireRole('operator'), async (c) => {
      const body = await readJson(c, z.object({
        errata_ids: z.array(z.string().trim().min(1).max(100)).min(1).max(1000).optional(),
        errata_id: z.string().trim().min(1).max(100).optional(),
        priority: z.number().int().min(-1000).max(1000).default(0),
        notes: z.string().max(4000).optional(),
      }).strict().refine((b) => (b.errata_ids === undefined) !== (b.errata_id === undefined), { message: 'give errata_id or errata_ids', path: ['errata_ids'] }));
      const ids = [...new Set(body.errata_ids ?? [body.errata_id!])];
      const results = await queueErrata(deps, ids, { priority: body.priority, notes: body.notes ?? null }, meta(c, deps));
      const queued = results.filter((r) => r.queued).length;
      return c.json({ queued, results }, queued > 0 ? 201 : 409);
    });

    api.get('/queue/stats', requireRole('viewer'), async (c) => c.json(await queueStats(deps.db)));

    api.get('/queue/:id', requireRole('viewer'), async (c) => {
      const id = readId(c);
      const item = await getQueueItem(deps.db, id);
      if (!item) throw new AppError(404, 'not_found', `queue entry ${id} does not exist`);
      const [errata, risk, tests] = await Promise.all([getErrata(deps.db, item.errata_id), getRiskProfile(deps.db, item.errata_id), testsOfEntry(deps.db, id)]);
      const live = deps.actors.snapshotOf(id);
      return c.json({
        entry: toApi(item),
        errata: toApi(errata),
        risk_profile: toApi(risk),
        tests: toApi(tests),
        state: live ? stateLabel(live.snapshot.value) : stateLabel(item.state_value as never ?? item.status),
        allowed_events: live && live.snapshot.status === 'active' ? acceptedOperatorEvents(live.snapshot, deps.clock.now()) : [],
      });
    });

    api.patch('/queue/:id', requireRole('operator'), async (c) => {
      const id = readId(c);
      const body = await readJson(c, z.object({ priority_override: z.number().int().min(-1000).max(1000).nullable().optional(), notes: z.string().max(4000).nullable().optional() })
        .strict().refine((b) => b.priority_override !== undefined || b.notes !== undefined, { message: 'give priority_override and/or notes' }));
      const row = await updateQueueFields(deps.db, id, body);
      if (!row) throw new AppError(404, 'not_found', `queue entry ${id} does not exist`);
      return c.json({ entry: toApi(await getQueueItem(deps.db, id)) });
    });

    api.delete('/queue/:id', requireRole('operator'), async (c) => {
      const id = readId(c);
      const m = meta(c, deps);
      const res = await deps.actors.send(id, { type: 'REMOVE', by: m.actor }, m);
      return c.json({ id, ...res });
    });

    api.get('/queue/:id/history', requireRole('viewer'), async (c) => {
      const id = readId(c);
      if (!(await loadEntry(deps.db, id))) throw new AppError(404, 'not_found', `queue entry ${id} does not exist`);
      const rows = await loadJournal(deps.db, id);
      return c.json({ id, transitions: toApi(rows.map(({ from_value: _f, to_value: _t, ...r }) => r)) });
    });

    api.get('/queue/:id/inspect', requireRole('viewer'), async (c) => {
      const id = readId(c);
      const row = await loadEntry(deps.db, id);
      if (!row) throw new AppError(404, 'not_found', `queue entry ${id} does not exist`);
      const live = deps.actors.snapshotOf(id);
      const snap = (row.snapshot ?? {}) as { value?: unknown; context?: unknown };
      const journal = await loadJournal(deps.db, id);
      return c.json({
        id,
        status: row.status,
        state: stateLabel((live?.snapshot.value ?? snap.value ?? row.status) as never),
        state_value: live?.snapshot.value ?? snap.value ?? null,
        revision: row.revision,
        owner: row.owner_id,
        live: live !== undefined,
        accepted_events: live && live.snapshot.status === 'active' ? acceptedOperatorEvents(live.snapshot, deps.clock.now()) : [],
        context: redactPayload(live?.snapshot.context ?? snap.context ?? null),
        path: journal.map((j) => j.to_state),
        machine: { id: patchMachine.id, version: patchMachine.version, ...machineGraph(patchMachine) },
      });
    });

    const operatorAction = (path: string, type: 'RETRY' | 'MARK_FAILED' | 'FORCE_ROLLBACK', needsReason: boolean) =>
      api.post(`/queue/:id/${path}`, requireRole('operator'), async (c) => {
        const id = readId(c);
        const body = await readJson(c, z.object({
          reason: needsReason ? reason : optionalReason,
          rollback_type: z.enum(['package', 'system']).optional(),
          systems: z.array(z.number().int().positive()).max(10_000).optional(),
        }).strict());
        const m = meta(c, deps);
        const ev = type === 'FORCE_ROLLBACK'
          ? { type, by: m.actor, reason: body.reason ?? '', ...(body.rollback_type ? { rollbackType: body.rollback_type } : {}), ...(body.systems ? { systems: body.systems } : {}) }
          : type === 'MARK_FAILED' ? { type, by: m.actor, reason: body.reason ?? '' } : { type, by: m.actor, ...(body.reason ? { reason: body.reason } : {}) };
        return c.json({ id, ...(await deps.actors.send(id, ev as never, m)) });
      });
    operatorAction('retry', 'RETRY', false);
    operatorAction('mark-failed', 'MARK_FAILED', true);
    operatorAction('force-rollback', 'FORCE_ROLLBACK', true);

    // ---------------------------------------------------------------- approvals
    api.get('/approvals/pending', requireRole('viewer'), async (c) => {
      const rows = await pendingApprovals(deps.db);
      return c.json({ items: toApi(rows), total: rows.length });
    });

    api.post('/approvals/:id/approve', requireRole('approver'), async (c) => {
      const id = readId(c);
      const body = await readJson(c, z.object({ reason: optionalReason }).strict());
      return c.json({ id, ...(await decide(deps, id, { action: 'approve', reason: body.reason }, meta(c, deps))) });
    });
    api.post('/approvals/:id/reject', requireRole('approver'), async (c) => {
      const id = readId(c);
      const body = await readJson(c, z.object({ reason }).strict());
      return c.json({ id, ...(await decide(deps, id, { action: 'reject', reason: body.reason }, meta(c, deps))) });
    });
    api.post('/approvals/:id/snooze', requireRole('approver'), async (c) => {
      const id = readId(c);
      const body = await readJson(c, snoozeBody);
      return c.json({ id, ...(await decide(deps, id, { action: 'snooze', ...body }, meta(c, deps))) });
    });

    api.post('/approvals/batch', requireRole('approver'), async (c) => {
      const item = z.discriminatedUnion('action', [
        z.object({ id: z.number().int().positive(), action: z.literal('approve'), reason: optionalReason }).strict(),
        z.object({ id: z.number().int().positive(), action: z.literal('reject'), reason }).strict(),
        z.object({ id: z.number().int().positive(), action: z.literal('snooze'), reason, until: z.iso.datetime({ offset: true }).optional(), days: z.number().int().min(1).max(365).optional() }).strict(),
      ]);
      const body = await readJson(c, z.object({ items: z.array(item).min(1).max(200) }).strict());
      const m = meta(c, deps);
      const results = [];
      for (const it of body.items) {
        try {
          if (it.action === 'snooze' && (it.until === undefined) === (it.days === undefined)) {
            throw new AppError(400, 'validation_failed', 'give exactly one of until or days');
          }
          const r = await decide(deps, it.id, it as Decision, m);
          results.push({ id: it.id, action: it.action, ok: true, status: r.status });
        } catch (raw) {
          if (!(raw instanceof AppError)) throw raw;
          results.push({ id: it.id, action: it.action, ok: false, error: { code: raw.code, message: raw.message, details: raw.details } });
        }
      }
      const ok = results.filter((r) => r.ok).length;
      return c.json({ succeeded: ok, failed: results.length - ok, results });
    });

    // ---------------------------------------------------------------- tests
    api.post('/tests/start', requireRole('operator'), async (c) => {
      const body = await readJson(c, z.object({
        queue_id: z.number().int().positive().optional(),
        target_os: z.enum(TARGET_OS).optional(),
        test_system: z.object({ id: z.number().int().positive().nullable(), name: z.string().min(1).max(200) }).strict().optional(),
      }).strict());
      if (!deps.testEngine.available) throw new AppError(503, 'test_engine_unavailable', deps.testEngine.reason ?? 'the test engine is not configured');
      const id = body.queue_id ?? (await nextQueued(deps.db, body.target_os ?? null));
      if (id === null) throw new AppError(409, 'queue_empty', 'no queued entry to test');
      const m = meta(c, deps);
      const res = await deps.actors.send(id, { type: 'START_TEST', by: m.actor, ...(body.test_system ? { testSystem: body.test_system } : {}) }, m);
      const entry = await getQueueItem(deps.db, id);
      return c.json({ queue_id: id, test_id: entry?.test_id ?? null, ...res }, 202);
    });

    const testOf = async (c: Context<ApiEnv>) => {
      const testId = readId(c);
      const test = await getTest(deps.db, testId);
      if (!test) throw new AppError(404, 'not_found', `test ${testId} does not exist`);
      return { testId, test: test as { queue_id: number } & Record<string, unknown> };
    };
    api.get('/tests/:id', requireRole('viewer'), async (c) => {
      const { test } = await testOf(c);
      const entry = await getQueueItem(deps.db, test.queue_id);
      return c.json({ test: toApi(test), entry_status: entry?.status ?? null, state: entry ? stateLabel((entry.state_value ?? entry.status) as never) : null });
    });
    api.get('/tests/:id/phases', requireRole('viewer'), async (c) => {
      const { testId } = await testOf(c);
      return c.json({ test_id: testId, phases: toApi(await getTestPhases(deps.db, testId)) });
    });
    api.post('/tests/:id/abort', requireRole('operator'), async (c) => {
      const { test } = await testOf(c);
      const body = await readJson(c, z.object({ reason }).strict());
      const m = meta(c, deps);
      return c.json({ queue_id: test.queue_id, ...(await deps.actors.send(test.queue_id, { type: 'ABORT', by: m.actor, reason: body.reason }, m)) });
    });
    api.post('/tests/:id/rollback', requireRole('operator'), async (c) => {
      const { test } = await testOf(c);
      const body = await readJson(c, z.object({ reason }).strict());
      const m = meta(c, deps);
      return c.json({ queue_id: test.queue_id, ...(await deps.actors.send(test.queue_id, { type: 'ROLLBACK_TEST', by: m.actor, reason: body.reason }, m)) });
    });
  };
}
