/** Request-scoped values shared by middleware and routes. */
import type { Context } from 'hono';
import type { Config } from '../config.ts';
import type { BaseDeps } from '../interfaces.ts';
import type { EventMeta } from '../machines/host.ts';
import type { AuditSlot } from '../persistence/sql/audit.ts';
import type { Role } from '../services/tokens.ts';
import { proxyTrust, type ProxyTrust } from './proxyTrust.ts';

/** Who a request's token belongs to (set by `authenticate`). */
export interface Principal {
  /** The token's id (0: the dashboard's proxy sign-in, no token). */
  tokenId: number;
  /** The token's name (or `proxy:<user>`), for display. */
  name: string;
  /**
   * The identity: who acts in the journal, the audit log and the approval gate. A token's
   * `api_tokens.person`; a proxy sign-in's user, so both ways of signing in are one person.
   */
  person: string;
  role: Role;
  via: 'token' | 'proxy';
}

/** The Hono environment of the API: the variables middleware sets for routes. */
export type ApiEnv = { Variables: { requestId: string; principal: Principal; audit: AuditSlot } };

/**
 * The client's address for the journal, the audit trail and the rate limits: X-Forwarded-For's
 * first hop only from the trusted proxy (TRUST_PROXY, and a peer in UI_PROXY_TRUSTED_CIDRS when
 * those are set: the rule of `proxyTrust`), else the socket's.
 * @returns at most 45 characters, or null without a socket (`app.request()` in tests)
 * @example
 * const ip = clientIp(c, deps.config);
 */
export function clientIp(c: Context, config: Pick<Config, 'uiProxy' | 'http'>): string | null {
  const address = trustOf(config).clientAddress(c);
  return address === 'unknown' ? null : address;
}

/** One proxy check per configuration (its CIDR matcher is built once). */
const trusts = new WeakMap<object, ProxyTrust>();
function trustOf(config: Pick<Config, 'uiProxy' | 'http'>): ProxyTrust {
  let t = trusts.get(config);
  if (!t) trusts.set(config, (t = proxyTrust(config)));
  return t;
}

/**
 * Who sent an operator event and from where, for the journal and the audit trail; it carries the
 * request's audit record, which the transaction of the change writes (see `AuditSlot`).
 * @param c the request (its principal is set by `authenticate`)
 * @param deps for the proxy trust: whether X-Forwarded-For names the client
 * @param opts `status`: what the route answers a success with (default 200)
 * @returns the event's metadata
 * @example
 * await deps.actors.send(id, { type: 'RETRY', by: m.actor }, eventMeta(c, deps));
 */
export function eventMeta(c: Context<ApiEnv>, deps: BaseDeps, opts: { status?: number } = {}): EventMeta {
  const audit = c.get('audit') as AuditSlot | undefined;
  if (audit && opts.status !== undefined) audit.successStatus = opts.status;
  return {
    actor: c.get('principal').person,
    ip: clientIp(c, deps.config),
    userAgent: c.req.header('user-agent') ?? null,
    requestId: c.get('requestId'),
    ...(audit ? { audit } : {}),
  };
}
