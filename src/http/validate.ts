/** Body and query validation at the HTTP boundary: bad input is a 4xx that says what is wrong. */
import type { Context } from 'hono';
import { z } from 'zod';
import { AppError } from '../errors.ts';

/** The longest reason an operator may give for a decision or an action. */
export const REASON_MAX = 2000;
/** A required reason (REJECT, SNOOZE, MARK_FAILED, FORCE_ROLLBACK, ABORT, rollbacks). */
export const reasonField = z.string().trim().min(1, 'reason is required').max(REASON_MAX);
/** An optional note (APPROVE, RETRY). */
export const optionalReasonField = z.string().trim().max(REASON_MAX).optional();

function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
}

/**
 * The JSON body, validated: 415 when it is not JSON, 400 with each issue when it does not fit; an
 * empty body counts as `{}` when the schema allows it.
 * @example
 * const body = await readJson(c, z.object({ reason: reasonField }).strict());
 */
export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const ct = c.req.header('content-type') ?? '';
  const text = await c.req.text();
  if (text.trim() === '') {
    const empty = schema.safeParse({});
    if (empty.success) return empty.data;
    throw new AppError(400, 'validation_failed', 'request body is required', issuesOf(empty.error));
  }
  if (!/^application\/(.+\+)?json\b/i.test(ct))
    throw new AppError(415, 'unsupported_media_type', 'send the body as application/json');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new AppError(400, 'invalid_json', `request body is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    throw new AppError(
      400,
      'validation_failed',
      `invalid request body: ${issuesOf(parsed.error)
        .map((i) => `${i.path}: ${i.message}`)
        .join('; ')}`,
      issuesOf(parsed.error),
    );
  return parsed.data;
}

/**
 * The query string, validated (400 with each issue).
 * @example
 * const { days } = readQuery(c, z.object({ days: z.coerce.number().int().default(30) }));
 */
export function readQuery<T extends z.ZodType>(c: Context, schema: T): z.infer<T> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success)
    throw new AppError(
      400,
      'validation_failed',
      `invalid query: ${issuesOf(parsed.error)
        .map((i) => `${i.path}: ${i.message}`)
        .join('; ')}`,
      issuesOf(parsed.error),
    );
  return parsed.data;
}

/**
 * A positive integer path parameter (400 otherwise).
 * @example
 * const id = readId(c); // /queue/:id
 */
export function readId(c: Context, name = 'id'): number {
  const v = c.req.param(name) ?? '';
  if (!/^[1-9]\d{0,15}$/.test(v))
    throw new AppError(400, 'invalid_id', `${name} must be a positive integer, got ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}
