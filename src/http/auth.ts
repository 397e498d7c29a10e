/**
 * Bearer API tokens (only SHA-256 hashes stored; looked up per request so a revocation applies at
 * once on every replica) and role checks: viewer < operator < approver < admin. Every mutating
 * request and every denial is written to `audit_log` with user, ip and user agent.
 */
import type { MiddlewareHandler } from 'hono';
import { coerceError } from '../errors.ts';
import type { BaseDeps } from '../interfaces.ts';
import { insertAudit } from '../persistence/sql/audit.ts';
import { findLiveToken } from '../persistence/sql/tokens.ts';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hashToken, roleAtLeast, ROLES, TOKEN_PATTERN, type Role } from '../services/tokens.ts';
import { clientIp, type ApiEnv } from './context.ts';
import { errorResponse } from './errors.ts';

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
function internalPrincipal(c: { req: { header(n: string): string | undefined } }): { name: string; role: Role } | null {
  const given = c.req.header('x-spm-internal-auth');
  if (given === undefined) return null;
  const a = Buffer.from(given);
  const b = Buffer.from(INTERNAL_SECRET);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
  const role = c.req.header('x-spm-internal-role') as Role;
  const name = c.req.header('x-spm-internal-user') ?? '';
  return (ROLES as readonly string[]).includes(role) && name !== '' ? { name: `proxy:${name}`, role } : null;
}

export function authenticate(deps: BaseDeps): MiddlewareHandler<ApiEnv> {
  return async function authenticate(c, next) {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const ip = clientIp(c, deps.config.http.trustProxy);
    const ua = c.req.header('user-agent') ?? null;
    const deny = async (code: string, message: string) => {
      await insertAudit(deps.db, {
        actor: 'anonymous', tokenId: null, action: 'authenticate', method: c.req.method, path: c.req.path, outcome: 'denied', statusCode: 401,
        ip, userAgent: ua, requestId: c.get('requestId'), details: { reason: code },
      }).catch((raw) => deps.logger.warn({ err: coerceError(raw).message }, 'audit write failed'));
      return errorResponse(c, 401, code, message, null, { 'WWW-Authenticate': 'Bearer realm="spm-orchestrator"' });
    };
    const internal = m === null ? internalPrincipal(c) : null;
    let principal: { tokenId: number; name: string; role: Role };
    if (internal !== null) principal = { tokenId: 0, ...internal };
    else {
      if (m === null) return deny('unauthorized', 'missing bearer token (Authorization: Bearer <token>)');
      const token = m[1]!;
      if (!TOKEN_PATTERN.test(token)) return deny('invalid_token', 'malformed token');
      const row = await findLiveToken(deps.db, hashToken(token));
      if (row === null) return deny('invalid_token', 'unknown, revoked or expired token');
      principal = { tokenId: row.id, name: row.name, role: row.role };
    }
    c.set('principal', principal);
    await next();
    if (MUTATING.has(c.req.method)) {
      await insertAudit(deps.db, {
        actor: principal.name, tokenId: principal.tokenId === 0 ? null : principal.tokenId, action: `${c.req.method} ${c.req.routePath}`, method: c.req.method, path: c.req.path,
        outcome: c.res.status < 400 ? 'succeeded' : c.res.status === 403 ? 'denied' : 'failed', statusCode: c.res.status, ip, userAgent: ua, requestId: c.get('requestId'),
      }).catch((raw) => deps.logger.warn({ err: coerceError(raw).message }, 'audit write failed'));
    }
  };
}

/** Route guard: the principal's role must be at least `need`. */
export function requireRole(need: Role): MiddlewareHandler<ApiEnv> {
  return async function requireRole(c, next) {
    const p = c.get('principal');
    if (!roleAtLeast(p.role, need)) {
      return errorResponse(c, 403, 'forbidden', `this needs the ${need} role; token ${p.name} has ${p.role}`, { required_role: need, role: p.role });
    }
    await next();
  };
}
