/**
 * Bearer API tokens (only SHA-256 hashes stored; looked up per request so a revocation applies at
 * once on every replica) and role checks: viewer < operator < approver < admin. The principal's
 * identity is a person (`api_tokens.person`, or the user a trusted proxy signed in): the journal,
 * the audit log and the approval gate see the person, whichever way they signed in.
 *
 * Audit: every mutating request and every denial (401, and 403 on reads too) is one `audit_log`
 * row. A request that changes an entry has its row written by the transaction of the change
 * (`AuditSlot`, carried in the event metadata); otherwise this middleware writes it after the
 * handler, before the answer leaves. A denial or a refused request whose row cannot be written is
 * answered 503 `audit_unavailable` instead.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { coerceError } from '../errors.ts';
import type { BaseDeps } from '../interfaces.ts';
import { insertAudit, type AuditRecord, type AuditSlot } from '../persistence/sql/audit.ts';
import { findLiveToken } from '../persistence/sql/tokens.ts';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hashToken, roleAtLeast, ROLES, TOKEN_PATTERN, validPerson, type Role } from '../services/tokens.ts';
import { clientIp, type ApiEnv, type Principal } from './context.ts';
import { errorResponse } from './errors.ts';
import { SharedFailureLimiter } from './rateLimit.ts';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * In-process calls of the dashboard for a user signed in by a trusted reverse proxy (no API
 * token): a per-process random secret, never sent over the network, proves the call came from
 * this process's dashboard.
 */
const INTERNAL_SECRET = randomBytes(32).toString('hex');
export function internalAuthHeaders(name: string, role: Role): Record<string, string> {
  return { 'x-spm-internal-auth': INTERNAL_SECRET, 'x-spm-internal-user': name, 'x-spm-internal-role': role };
}
/** The proxy-signed-in user acts as the person of that name (the same person as a token's `person`). */
function internalPrincipal(c: { req: { header(n: string): string | undefined } }): Principal | null {
  const given = c.req.header('x-spm-internal-auth');
  if (given === undefined) return null;
  const a = Buffer.from(given);
  const b = Buffer.from(INTERNAL_SECRET);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
  const role = c.req.header('x-spm-internal-role') as Role;
  const name = c.req.header('x-spm-internal-user') ?? '';
  return (ROLES as readonly string[]).includes(role) && validPerson(name)
    ? { tokenId: 0, name: `proxy:${name}`, person: name, role, via: 'proxy' }
    : null;
}

/** `audit_log.target_type` by the route's first segment (its `:id` is the target id). */
const TARGETS: Record<string, string> = {
  queue: 'queue_entry',
  approvals: 'queue_entry',
  tests: 'test',
  deployments: 'deployment',
  rollback: 'rollback',
  'risk-profile': 'errata',
};

/**
 * The target of a request from its route and parameters, for its audit row.
 * @example auditTarget('/queue/:id/retry', { id: '12' }) // { type: 'queue_entry', id: '12' }
 */
export function auditTarget(path: string, params: Record<string, string>): { type: string; id: string } | null {
  const id = params.id ?? params.errata_id;
  const type = TARGETS[path.split('/')[1] ?? ''];
  return id !== undefined && type !== undefined ? { type, id: id.slice(0, 200) } : null;
}

/**
 * The route a request matched, as the endpoint tables name it (`POST /queue/:id/retry`): the
 * last matched route that is not a middleware, without the `/api/v1` base. The path itself when
 * none matched (a 404).
 */
function routeAction(c: Context): string {
  let pattern: string | undefined;
  try {
    pattern = matchedRoutes(c).findLast((r) => r.method !== 'ALL')?.path;
  } catch {
    pattern = undefined;
  }
  return `${c.req.method} ${(pattern ?? c.req.path).replace(/^\/api\/v1(?=\/|$)/, '') || '/'}`;
}

/** The `error.code` of a JSON error answer (for the audit row), else null. */
async function errorCodeOf(res: Response): Promise<string | null> {
  try {
    const body = (await res.clone().json()) as { error?: { code?: unknown } };
    return typeof body.error?.code === 'string' ? body.error.code : null;
  } catch {
    return null;
  }
}

/**
 * Authenticate every request under the API base. Unknown bearer tokens are counted per client
 * address on every replica (`API_AUTH_MAX_FAILURES_PER_IP` in `API_AUTH_WINDOW_SECONDS`); past
 * that, an unknown token from the address is answered 429 `too_many_failures` with Retry-After,
 * without a database write — a flood of guesses neither fills the audit log nor loads the database.
 * A valid token still works from that address (tokens are 256-bit random: a lockout would add no
 * protection and let one broken script behind a shared address lock everybody out). In-process
 * calls (no client address) are not counted.
 */
export function authenticate(deps: BaseDeps): MiddlewareHandler<ApiEnv> {
  const limit = deps.config.http.authFailures;
  const perIp = new SharedFailureLimiter(deps.db, 'api_ip', { max: limit.maxPerIp, windowMs: limit.windowMs }, (msg) =>
    deps.logger.warn(msg),
  );
  return async function authenticate(c, next) {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const ip = clientIp(c, deps.config);
    const ua = c.req.header('user-agent') ?? null;
    const base = { method: c.req.method, path: c.req.path, ip, userAgent: ua, requestId: c.get('requestId') };
    /** Write one row now; false when it could not be written (logged with the row). */
    const write = async (row: AuditRecord): Promise<boolean> => {
      try {
        await insertAudit(deps.db, row);
        return true;
      } catch (raw) {
        deps.logger.error({ err: coerceError(raw).message, audit: row }, 'audit write failed');
        return false;
      }
    };
    const unavailable = () =>
      errorResponse(c, 503, 'audit_unavailable', 'the audit log cannot be written: nothing was done; retry later');
    const tooMany = (ms: number) => {
      const s = Math.ceil(ms / 1000);
      return errorResponse(
        c,
        429,
        'too_many_failures',
        `too many unknown tokens from this address: try again in ${s} s`,
        { retry_after_s: s },
        { 'Retry-After': String(s) },
      );
    };
    const deny = async (code: string, message: string) => {
      // An unknown token is a guess: counted for the address (a missing one is not).
      const refusedMs = code === 'invalid_token' && ip !== null ? await perIp.fail(ip) : 0;
      if (refusedMs > 0) {
        deps.logger.warn(
          { ip, refused_for_s: Math.ceil(refusedMs / 1000) },
          'too many unknown tokens from one address',
        );
      }
      const ok = await write({
        ...base,
        actor: 'anonymous',
        tokenId: null,
        action: 'authenticate',
        outcome: 'denied',
        statusCode: 401,
        details: { reason: code, ...(refusedMs > 0 ? { address_refused_for_s: Math.ceil(refusedMs / 1000) } : {}) },
      });
      if (!ok) return unavailable();
      return errorResponse(c, 401, code, message, null, { 'WWW-Authenticate': 'Bearer realm="spm-orchestrator"' });
    };
    const internal = m === null ? internalPrincipal(c) : null;
    let principal: Principal;
    if (internal !== null) principal = internal;
    else {
      if (m === null) return deny('unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
      const token = m[1]!;
      const refused = ip === null ? 0 : perIp.retryAfterMs(ip);
      if (!TOKEN_PATTERN.test(token)) return refused > 0 ? tooMany(refused) : deny('invalid_token', 'malformed token');
      const row = await findLiveToken(deps.db, hashToken(token));
      if (row === null)
        return refused > 0 ? tooMany(refused) : deny('invalid_token', 'unknown, revoked or expired token');
      principal = { tokenId: row.id, name: row.name, person: row.person, role: row.role, via: 'token' };
    }
    c.set('principal', principal);
    const slot: AuditSlot = {
      record: {
        ...base,
        actor: principal.person,
        tokenId: principal.tokenId === 0 ? null : principal.tokenId,
        action: routeAction(c),
      },
      successStatus: 200,
      written: 0,
    };
    c.set('audit', slot);
    await next();
    const status = c.res.status;
    if (slot.written > 0 || !(MUTATING.has(c.req.method) || status === 401 || status === 403)) return;
    // Nothing wrote the row in a transaction of its own: a refusal, a request that changed no entry
    // (sync, risk profiles), a replayed answer, or an event handled by another replica.
    const code = status >= 400 ? await errorCodeOf(c.res) : null;
    const replayed = c.res.headers.get('idempotent-replayed') === 'true';
    const target = slot.target ?? null;
    const ok = await write({
      ...slot.record,
      outcome: status < 400 ? 'succeeded' : status === 401 || status === 403 ? 'denied' : 'failed',
      statusCode: status,
      targetType: target?.type ?? null,
      targetId: target?.id ?? null,
      details: {
        ...(code ? { error: code } : {}),
        ...(replayed ? { idempotent_replay: true } : {}),
        ...(principal.via === 'proxy' ? { via: 'proxy' } : {}),
      },
    });
    // A refusal changed nothing: say the audit is unavailable rather than answer unrecorded. A
    // success has happened already; its row is in the error log.
    if (!ok && status >= 400) c.res = unavailable();
  };
}

/** Route guard: the principal's role must be at least `need`. */
export function requireRole(need: Role): MiddlewareHandler<ApiEnv> {
  return async function requireRole(c, next) {
    const p = c.get('principal') as Principal | undefined;
    // Never reached without `authenticate` (it runs before every route but the ping); if it were, no principal is no access.
    if (p === undefined) return errorResponse(c, 401, 'unauthorized', 'authentication required');
    if (!roleAtLeast(p.role, need)) {
      return errorResponse(c, 403, 'forbidden', `this needs the ${need} role; token ${p.name} has ${p.role}`, {
        required_role: need,
        role: p.role,
      });
    }
    await next();
  };
}
