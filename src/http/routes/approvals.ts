/**
 * Approvals: the entries waiting for a decision, and APPROVE / REJECT / SNOOZE one at a time or as
 * a batch. Answered only after the entry's transition is committed.
 */
import type { Context } from 'hono';
import { z } from 'zod';
import { pendingApprovals } from '../../persistence/sql/queue.ts';
import { decide, decideBatch } from '../../services/commands/approvals.ts';
import { eventMeta, type ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { optionalReasonField, readId, readJson, reasonField } from '../validate.ts';
import type { Endpoint } from './endpoints.ts';
import type { QueueDeps } from './queue.ts';

const snoozeUntil = z.iso.datetime({ offset: true }).optional();
const snoozeDays = z.number().int().min(1).max(365).optional();
const approveBody = z.object({ reason: optionalReasonField }).strict();
const rejectBody = z.object({ reason: reasonField }).strict();
const snoozeBody = z
  .object({ reason: reasonField, until: snoozeUntil, days: snoozeDays })
  .strict()
  .refine((b) => (b.until === undefined) !== (b.days === undefined), {
    message: 'give exactly one of until (ISO-8601 date-time) or days (1–365)',
    path: ['until'],
  });
const entryId = z.number().int().positive();
const batchItem = z.discriminatedUnion('action', [
  z.object({ id: entryId, action: z.literal('approve'), reason: optionalReasonField }).strict(),
  z.object({ id: entryId, action: z.literal('reject'), reason: reasonField }).strict(),
  z
    .object({ id: entryId, action: z.literal('snooze'), reason: reasonField, until: snoozeUntil, days: snoozeDays })
    .strict(),
]);
const batchBody = z.object({ items: z.array(batchItem).min(1).max(200) }).strict();

async function listPendingApprovals(c: Context<ApiEnv>, deps: QueueDeps) {
  const rows = await pendingApprovals(deps.db);
  return c.json({ items: toApi(rows), total: rows.length });
}

async function approveEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const body = await readJson(c, approveBody);
  return c.json({ id, ...(await decide(deps, id, { action: 'approve', reason: body.reason }, eventMeta(c, deps))) });
}

async function rejectEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const body = await readJson(c, rejectBody);
  return c.json({ id, ...(await decide(deps, id, { action: 'reject', reason: body.reason }, eventMeta(c, deps))) });
}

async function snoozeEntry(c: Context<ApiEnv>, deps: QueueDeps) {
  const id = readId(c);
  const body = await readJson(c, snoozeBody);
  return c.json({ id, ...(await decide(deps, id, { action: 'snooze', ...body }, eventMeta(c, deps))) });
}

async function decideMany(c: Context<ApiEnv>, deps: QueueDeps) {
  const body = await readJson(c, batchBody);
  return c.json(await decideBatch(deps, body.items, eventMeta(c, deps)));
}

/** The approvals endpoints, mounted by `queueRoutes`. */
export const APPROVALS: Endpoint<QueueDeps>[] = [
  ['GET', '/approvals/pending', 'viewer', listPendingApprovals],
  ['POST', '/approvals/:id/approve', 'approver', approveEntry],
  ['POST', '/approvals/:id/reject', 'approver', rejectEntry],
  ['POST', '/approvals/:id/snooze', 'approver', snoozeEntry],
  ['POST', '/approvals/batch', 'approver', decideMany],
];
