/**
 * Test runs: start one (a given entry or the next queued), read one and its phases, abort it or
 * roll its test system back. Changes go through the entry's actor.
 */
import type { Context } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import { TARGET_OS } from '../../machines/patch.machine.ts';
import { getTest } from '../../persistence/sql/queue.ts';
import { rollBackTestSystem, startTest } from '../../services/commands/tests.ts';
import { testDetail, testPhases } from '../../services/views/testView.ts';
import { eventMeta, type ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readId, readJson, reasonField, systemIdField } from '../validate.ts';
import type { Endpoint } from './endpoints.ts';
import type { QueueDeps } from './queue.ts';

const startBody = z
  .object({
    queue_id: z.number().int().positive().optional(),
    target_os: z.enum(TARGET_OS).optional(),
    test_system: z
      .object({ id: systemIdField.nullable(), name: z.string().min(1).max(200) })
      .strict()
      .optional(),
  })
  .strict();
const reasonBody = z.object({ reason: reasonField }).strict();

const noSuchTest = (testId: number) => new AppError(404, 'not_found', `test ${testId} does not exist`);

/** The entry a test belongs to (404 before the body is read, as for every test route). */
async function entryOfTest(c: Context<ApiEnv>, deps: QueueDeps): Promise<number> {
  const testId = readId(c);
  const test = await getTest(deps.db, testId);
  if (!test) throw noSuchTest(testId);
  return test.queue_id as number;
}

async function startTestRun(c: Context<ApiEnv>, deps: QueueDeps) {
  const body = await readJson(c, startBody);
  return c.json(await startTest(deps, body, eventMeta(c, deps, { status: 202 })), 202);
}

async function getTestRun(c: Context<ApiEnv>, deps: QueueDeps) {
  const testId = readId(c);
  const detail = await testDetail(deps.db, testId);
  if (!detail) throw noSuchTest(testId);
  return c.json({ ...detail, test: toApi(detail.test) });
}

async function getTestRunPhases(c: Context<ApiEnv>, deps: QueueDeps) {
  const testId = readId(c);
  const phases = await testPhases(deps.db, testId);
  if (!phases) throw noSuchTest(testId);
  return c.json({ test_id: testId, phases: toApi(phases) });
}

async function abortTestRun(c: Context<ApiEnv>, deps: QueueDeps) {
  const queueId = await entryOfTest(c, deps);
  const body = await readJson(c, reasonBody);
  const m = eventMeta(c, deps);
  return c.json({
    queue_id: queueId,
    ...(await deps.actors.send(queueId, { type: 'ABORT', by: m.actor, reason: body.reason }, m)),
  });
}

async function rollBackTestRun(c: Context<ApiEnv>, deps: QueueDeps) {
  const queueId = await entryOfTest(c, deps);
  const body = await readJson(c, reasonBody);
  const m = eventMeta(c, deps);
  const res = await rollBackTestSystem(deps, queueId, body.reason, m);
  return c.json({ queue_id: queueId, ...res });
}

/** The test-run endpoints, mounted by `queueRoutes`. */
export const TESTS: Endpoint<QueueDeps>[] = [
  ['POST', '/tests/start', 'operator', startTestRun],
  ['GET', '/tests/:id', 'viewer', getTestRun],
  ['GET', '/tests/:id/phases', 'viewer', getTestRunPhases],
  ['POST', '/tests/:id/abort', 'operator', abortTestRun],
  ['POST', '/tests/:id/rollback', 'operator', rollBackTestRun],
];
