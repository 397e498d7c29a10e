/**
 * The first check of every request (API, dashboard, `/metrics`): a NUL byte or a lone surrogate in
 * the path, the query (keys and values, every repetition) or a header the daemon reads is refused
 * with 400 `invalid_text` naming where it is — before authentication, idempotency or the audit
 * write could hand it to PostgreSQL (which refuses NUL in `text`, and would answer a 500). A path
 * segment whose percent-encoding does not decode (`%ZZ`, `%ED%A0%80`) is a 400 too.
 *
 * Bodies are checked where they are parsed: `readJson` (./validate.ts) for the API, `Session.form`
 * for the dashboard's forms.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { textProblem, type TextIssue } from './validate.ts';
import { errorResponse } from './errors.ts';

/** Headers some part of the daemon reads (the proxy's own are added from the configuration). */
const READ_HEADERS = [
  'authorization',
  'idempotency-key',
  'user-agent',
  'origin',
  'host',
  'cookie',
  'content-type',
  'sec-fetch-site',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-request-id',
  'accept',
];

/** The name of path segment `i` in the matched route's pattern (`:errata_id` → `errata_id`), else null. */
function paramName(c: Context, i: number): string | null {
  try {
    const seg = routePath(c, -1).split('/')[i] ?? '';
    const m = /^:([A-Za-z0-9_]+)/.exec(seg);
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}

function pathIssue(c: Context): TextIssue | null {
  const raw = new URL(c.req.url).pathname.split('/');
  for (let i = 0; i < raw.length; i++) {
    const seg = raw[i]!;
    if (!seg.includes('%')) continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      return { path: paramName(c, i) ?? 'path', message: `path segment ${i} is not valid percent-encoded UTF-8` };
    }
    const why = textProblem(decoded);
    if (why !== null) return { path: paramName(c, i) ?? 'path', message: `path segment ${i} ${why}` };
  }
  return null;
}

function queryIssue(c: Context): TextIssue | null {
  for (const [key, values] of Object.entries(c.req.queries())) {
    const keyWhy = textProblem(key);
    if (keyWhy !== null) return { path: 'query', message: `a key ${keyWhy}` };
    for (const v of values) {
      const why = textProblem(v);
      if (why !== null) return { path: `query.${key.slice(0, 60)}`, message: why };
    }
  }
  return null;
}

function headerIssue(c: Context, names: readonly string[]): TextIssue | null {
  for (const name of names) {
    const v = c.req.header(name);
    const why = v === undefined ? null : textProblem(v);
    if (why !== null) return { path: `header.${name}`, message: why };
  }
  return null;
}

/**
 * Refuse hostile text in the path, query and read headers of every request.
 * @param extraHeaders further headers read (the trusted proxy's user, role and secret headers)
 * @example
 * app.use(hostileInput([config.uiProxy?.userHeader]));
 */
export function hostileInput(extraHeaders: (string | undefined)[] = []): MiddlewareHandler {
  const headers = [...READ_HEADERS, ...extraHeaders.filter((h): h is string => h !== undefined)];
  return async function hostileInput(c, next) {
    let issue: TextIssue | null;
    try {
      issue = pathIssue(c) ?? queryIssue(c) ?? headerIssue(c, headers);
    } catch {
      issue = { path: 'query', message: 'the query string cannot be decoded' };
    }
    if (issue === null) return next();
    const message = `${issue.path}: ${issue.message}`;
    if (c.req.path.startsWith('/ui')) return c.text(`bad request: ${message}`, 400);
    return errorResponse(c, 400, 'invalid_text', message, [issue]);
  };
}
