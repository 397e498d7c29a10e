/**
 * Body, query, path and header validation at the HTTP boundary: bad input is a 4xx that says what
 * is wrong, never a 5xx.
 *
 * Hostile text: a NUL byte (PostgreSQL `text` and `jsonb` refuse it, so it would surface as a 500)
 * or a lone UTF-16 surrogate (not Unicode; it cannot be stored as UTF-8) is refused with 400
 * `invalid_text` naming the field, wherever the request carries it: the JSON body (values and
 * keys), the query, the path, the form fields of the dashboard and the headers the daemon reads.
 * `textProblem` is the one check; `findUnsafeText` walks a parsed value with it (iteratively, in
 * time linear in the value's size); `hostileInput` (./hostileInput.ts) runs it on every request.
 */
import type { Context } from 'hono';
import { z } from 'zod';
import { AppError } from '../errors.ts';

/** The longest reason an operator may give for a decision or an action. */
export const REASON_MAX = 2000;

/**
 * What is wrong with a string, or null when it is fine: a NUL byte, or a lone surrogate.
 * @example
 * textProblem('a\u0000b') // 'contains a NUL byte'
 */
export function textProblem(s: string): string | null {
  if (s.includes('\u0000')) return 'contains a NUL byte';
  if (!s.isWellFormed()) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return null;
}

/** A string without NUL bytes or lone surrogates (the zod form of `textProblem`). */
export const safeText = () =>
  z.string().superRefine((s, ctx) => {
    const why = textProblem(s);
    if (why !== null) ctx.addIssue({ code: 'custom', message: why });
  });

/** A required reason (REJECT, SNOOZE, MARK_FAILED, FORCE_ROLLBACK, ABORT, rollbacks). */
export const reasonField = safeText().trim().min(1, 'reason is required').max(REASON_MAX);
/** An optional note (APPROVE, RETRY). */
export const optionalReasonField = safeText().trim().max(REASON_MAX).optional();
/** A system id as UYUNI and the database store it (PostgreSQL `integer`). */
export const systemIdField = z.number().int().positive().max(2_147_483_647);
/** A row id (PostgreSQL `bigint`, within what a JSON number holds exactly). */
export const rowIdField = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** One refused field: where it is and why. */
export interface TextIssue {
  path: string;
  message: string;
}

interface PathNode {
  parent: PathNode | null;
  key: string | number;
}

function pathText(root: string, node: PathNode | null): string {
  const keys: (string | number)[] = [];
  for (let n = node; n !== null && keys.length < 12; n = n.parent) keys.push(n.key);
  const cut = keys.length === 12 ? '….' : '';
  const inner = keys
    .reverse()
    .map((k) => (typeof k === 'number' ? String(k) : k.length > 60 ? `${k.slice(0, 60)}…` : k));
  return [root, cut + inner.join('.')].filter((x) => x !== '').join('.') || root;
}

/**
 * The first string (value or object key) of `value` that `textProblem` refuses, with its path
 * (`body.items.3.reason`), or null. Iterative and linear: a deeply nested or huge body costs one
 * pass, and the path is built only for the refused field.
 * @example
 * findUnsafeText({ notes: 'a\u0000' }, 'body') // { path: 'body.notes', message: 'contains a NUL byte' }
 */
export function findUnsafeText(value: unknown, root: string): TextIssue | null {
  const stack: [unknown, PathNode | null][] = [[value, null]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      const why = textProblem(v);
      if (why !== null) return { path: pathText(root, at), message: why };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], { parent: at, key: i }]);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const node = { parent: at, key: k };
        const why = textProblem(k);
        if (why !== null) return { path: pathText(root, node), message: `key ${why}` };
        stack.push([x, node]);
      }
    }
  }
  return null;
}

/**
 * Refuse `value` with 400 `invalid_text` when it carries a NUL byte or a lone surrogate.
 * @example
 * assertSafeText(c.req.query(), 'query');
 */
export function assertSafeText(value: unknown, root: string): void {
  const issue = findUnsafeText(value, root);
  if (issue !== null) throw new AppError(400, 'invalid_text', `${issue.path}: ${issue.message}`, [issue]);
}

function issuesOf(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.join('.') || '(body)', message: i.message }));
}

/**
 * The JSON body, validated: 415 when it is not JSON, 400 with each issue when it does not fit; an
 * empty body counts as `{}` when the schema allows it. A NUL byte or lone surrogate in any string
 * or key is a 400 naming it.
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
    // V8's message quotes the body; the position is enough (and a quoted NUL could not be stored
    // with the idempotent answer).
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new AppError(400, 'invalid_json', `request body is not valid JSON${at ? ` (at position ${at})` : ''}`);
  }
  const unsafe = findUnsafeText(raw, '');
  if (unsafe !== null) {
    const path = unsafe.path === '' ? '(body)' : unsafe.path;
    throw new AppError(400, 'invalid_text', `invalid request body: ${path}: ${unsafe.message}`, [
      { path, message: unsafe.message },
    ]);
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
  const query = c.req.query();
  assertSafeText(query, 'query');
  const parsed = schema.safeParse(query);
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
 * A positive integer path parameter, at most `Number.MAX_SAFE_INTEGER` (400 otherwise).
 * @example
 * const id = readId(c); // /queue/:id
 */
export function readId(c: Context, name = 'id'): number {
  const v = c.req.param(name) ?? '';
  if (!/^[1-9]\d{0,15}$/.test(v) || Number(v) > Number.MAX_SAFE_INTEGER)
    throw new AppError(
      400,
      'invalid_id',
      `${name} must be a positive integer up to ${Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(v.slice(0, 40))}`,
    );
  return Number(v);
}

/**
 * A text path parameter of 1 to `max` characters without NUL bytes or lone surrogates (400 otherwise).
 * @example
 * const errataId = readParam(c, 'errata_id', 100); // /risk-profile/:errata_id
 */
export function readParam(c: Context, name: string, max: number): string {
  const v = c.req.param(name) ?? '';
  if (v.length === 0 || v.length > max) throw new AppError(400, 'invalid_id', `${name} must be 1–${max} characters`);
  const why = textProblem(v);
  if (why !== null) throw new AppError(400, 'invalid_text', `${name}: ${why}`, [{ path: name, message: why }]);
  return v;
}
