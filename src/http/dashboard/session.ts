/**
 * Who is signed in to the dashboard, and the guard of every form it posts.
 *
 * Sessions are server-side: the cookie (`spm_session`, HttpOnly, SameSite=Strict, Secure behind
 * HTTPS, path /ui) holds only a random 256-bit id, never the API token. Sessions are rows of
 * `ui_sessions` (./sessionStore.ts): every replica knows them, a restart keeps them, and a row
 * without the browser's cookie opens nothing. A session ends after `UI_SESSION_IDLE_MINUTES` without
 * a page view (the 5-second live refreshes do not count; views are written at most once a minute,
 * so it may end up to a minute early), after `UI_SESSION_MAX_HOURS` in any case, at sign-out (the
 * row is deleted), when its token is revoked (a trigger deletes its sessions) or expires (checked
 * on every page).
 *
 * A trusted reverse proxy may sign users in instead (UI_PROXY_USER_HEADER, only with TRUST_PROXY=true
 * and only from the proxy: its shared secret and/or a trusted source address, see ../proxyTrust.ts);
 * a proxy header from anyone else is refused with 403. Every form carries a CSRF token bound to the
 * session (derived from its id; for a proxy user an HMAC of the user and role), and a POST whose Origin (including `null`) or
 * Sec-Fetch-Site says cross-site is refused. Sign-in failures are limited per client address and per
 * token (../rateLimit.ts). The dashboard reads and decides through the API in-process
 * (`app.request`) as the signed-in user, so the API's checks and audit apply.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { coerceError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import { ROLES, type Role } from '../../services/tokens.ts';
import { internalAuthHeaders } from '../auth.ts';
import { proxyTrust } from '../proxyTrust.ts';
import { SharedFailureLimiter } from '../rateLimit.ts';
import { findUnsafeText } from '../validate.ts';
import { databaseSessionStore, type SessionStore } from './sessionStore.ts';

const COOKIE = 'spm_session';
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** A call of the daemon's own `/api/v1` as the signed-in user. */
export type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;

/** The signed-in user as the pages see them. */
export interface Viewer {
  name: string;
  role: Role;
  /** The CSRF token every form of this session carries. */
  csrf: string;
  api: Api;
}

/** A posted form that passed the guard: its viewer and its fields (strings only). */
export interface PostedForm {
  v: Viewer;
  f: Record<string, string>;
}

/** The sign-in rate limit's answer: allowed, or refused for `retryAfterS` seconds. */
export interface LoginGate {
  /** Seconds to wait before another attempt from this client (and this token), 0 = go ahead. */
  retryAfterS(c: Context, tokenKey: string | null): Promise<number>;
  /** Count a failed sign-in (on every replica: the counts are in PostgreSQL). */
  failed(c: Context, tokenKey: string | null): Promise<void>;
  succeeded(c: Context, tokenKey: string | null): Promise<void>;
}

/** The dashboard's sign-in state and form guard (one per mounted dashboard). */
export interface Session {
  /** The signed-in viewer, or a redirect to the sign-in page (a 403 for a refused proxy sign-in). */
  viewer(c: Context): Promise<Viewer | Response>;
  /** POST guard: same-site only, CSRF token of this session; else a 403 (or the sign-in redirect). */
  form(c: Context): Promise<PostedForm | Response>;
  /** The API as the holder of `token` (sign-in checks the token with it). */
  apiWithToken(token: string, c: Context): Api;
  /** Start a server-side session for `token`'s holder and set its cookie (a new id every time); false if the token is not live. */
  signIn(c: Context, token: string): Promise<boolean>;
  /** End the session server-side and forget the cookie. */
  signOut(c: Context): Promise<void>;
  /** The sign-in rate limit. */
  login: LoginGate;
  /** The store (for tests). */
  store: SessionStore;
}

/**
 * Whether the browser says the request comes from another site (Sec-Fetch-Site).
 * @example
 * if (isCrossSiteFetch(c)) return c.text('cross-site request refused', 403);
 */
export function isCrossSiteFetch(c: Context): boolean {
  const site = c.req.header('sec-fetch-site');
  return Boolean(site && site !== 'same-origin' && site !== 'none');
}

/**
 * Whether a POST comes from another origin: Sec-Fetch-Site says so, or Origin is present and is
 * not this host (`Origin: null` — a sandboxed frame, a cross-origin redirect — counts as another).
 * @example
 * if (isCrossOrigin(c)) return c.text('cross-site request refused', 403);
 */
export function isCrossOrigin(c: Context): boolean {
  if (isCrossSiteFetch(c)) return true;
  const origin = c.req.header('origin');
  const host = c.req.header('host');
  if (origin === undefined || host === undefined) return false;
  try {
    return new URL(origin).host !== host;
  } catch {
    return true;
  }
}

const isSecure = (c: Context) => c.req.url.startsWith('https:') || c.req.header('x-forwarded-proto') === 'https';

/** Live fragments refreshed by the page's script: they do not keep a session alive. */
const isPassive = (c: Context) => c.req.path.startsWith('/ui/live/');

/**
 * The dashboard's session over `app` (the root application, whose `/api/v1` it calls).
 * @example
 * const session = createSession(deps, app);
 * const v = await session.viewer(c);
 */
export function createSession(deps: BaseDeps, app: Hono<any>, store?: SessionStore): Session {
  // CSRF tokens: a session's is derived from its id (any replica computes it, no other site can:
  // the cookie is HttpOnly and SameSite=Strict); a proxy user's is an HMAC under a key derived from
  // UI_PROXY_SECRET (shared by the replicas), or a per-process key with trusted CIDRs only.
  const proxyKey = deps.config.uiProxy?.secret
    ? Buffer.from(hkdfSync('sha256', deps.config.uiProxy.secret, 'spm-ui-proxy', 'csrf key', 32))
    : randomBytes(32);
  const csrfOfProxy = (bound: string) => createHmac('sha256', proxyKey).update(bound).digest('base64url');
  const csrfOfSession = (id: string) =>
    Buffer.from(hkdfSync('sha256', id, 'spm-ui-session', 'csrf', 32)).toString('base64url');
  const sessions =
    store ??
    databaseSessionStore(deps.db, { idleMs: deps.config.ui.sessionIdleMs, maxMs: deps.config.ui.sessionMaxMs });
  const trust = proxyTrust(deps.config);
  const limits = deps.config.ui.login;
  const warn = (message: string) => deps.logger.warn(message);
  const perIp = new SharedFailureLimiter(
    deps.db,
    'ui_ip',
    { max: limits.maxFailuresPerIp, windowMs: limits.windowMs },
    warn,
  );
  const perToken = new SharedFailureLimiter(
    deps.db,
    'ui_token',
    { max: limits.maxFailuresPerUser, windowMs: limits.windowMs },
    warn,
  );

  const apiFor =
    (token: string | { name: string; role: Role }, c: Context): Api =>
    async (method, path, body) => {
      const auth =
        typeof token === 'string' ? { authorization: `Bearer ${token}` } : internalAuthHeaders(token.name, token.role);
      const json = body !== undefined ? { 'content-type': 'application/json' } : {};
      const res = await app.request(`/api/v1${path}`, {
        method,
        headers: { ...auth, 'user-agent': `${(c.req.header('user-agent') ?? '').slice(0, 300)} (dashboard)`, ...json },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      try {
        return { status: res.status, body: text ? JSON.parse(text) : null };
      } catch {
        return { status: res.status, body: { error: { message: `HTTP ${res.status}` } } };
      }
    };

  const sessionId = (c: Context) => {
    const id = getCookie(c, COOKIE);
    return id !== undefined && SESSION_ID.test(id) ? id : null;
  };

  async function signOut(c: Context) {
    const id = sessionId(c);
    if (id !== null) await sessions.delete(id);
    deleteCookie(c, COOKIE, { path: '/ui' });
  }

  /** A user named by the trusted reverse proxy, with the role it names (else the default role). */
  function proxyViewer(c: Context): Viewer | Response | null {
    const proxy = deps.config.uiProxy;
    const proxyUser = proxy ? c.req.header(proxy.userHeader)?.trim() : undefined;
    if (!proxy || proxyUser === undefined || proxyUser === '') return null;
    const refused = trust.refusal(c);
    if (refused !== null) {
      deps.logger.warn(
        { path: c.req.path, peer: trust.clientAddress(c), why: refused },
        'proxy sign-in header from outside the trusted proxy refused',
      );
      return c.text('proxy sign-in refused: this request did not come through the trusted proxy', 403);
    }
    if (!/^[\w.@-]{1,100}$/.test(proxyUser)) return c.text('proxy sign-in refused: the user name is not valid', 403);
    const asked = proxy.roleHeader ? c.req.header(proxy.roleHeader)?.trim().toLowerCase() : undefined;
    const role: Role = asked && (ROLES as readonly string[]).includes(asked) ? (asked as Role) : proxy.defaultRole;
    const csrf = csrfOfProxy(`proxy:${proxyUser}:${role}`);
    return { name: `proxy:${proxyUser}`, role, csrf, api: apiFor({ name: proxyUser, role }, c) };
  }

  async function viewer(c: Context): Promise<Viewer | Response> {
    const proxied = proxyViewer(c);
    if (proxied) return proxied;
    const id = sessionId(c);
    const now = Date.now();
    const record = id === null ? null : await sessions.get(id, now);
    if (id === null || record === null) {
      if (getCookie(c, COOKIE) === undefined) return c.redirect('/ui/login', 303);
      deleteCookie(c, COOKIE, { path: '/ui' });
      return c.redirect('/ui/login?expired=1', 303);
    }
    const api = apiFor(record.token, c);
    const me = await api('GET', '/whoami');
    if (me.status !== 200) {
      await signOut(c);
      return c.redirect('/ui/login?expired=1', 303);
    }
    if (!isPassive(c)) await sessions.touch(id, now);
    return { name: me.body.name, role: me.body.role, csrf: csrfOfSession(id), api };
  }

  async function form(c: Context): Promise<PostedForm | Response> {
    if (isCrossOrigin(c)) return c.text('cross-site request refused', 403);
    const v = await viewer(c);
    if (v instanceof Response) return v;
    let body: Record<string, unknown>;
    try {
      body = await c.req.parseBody({ all: true });
    } catch (raw) {
      deps.logger.debug({ err: coerceError(raw).message }, 'unreadable dashboard form');
      return c.text('bad request: the form body cannot be read', 400);
    }
    const unsafe = findUnsafeText(body, 'form');
    if (unsafe !== null) return c.text(`bad request: ${unsafe.path}: ${unsafe.message}`, 400);
    const first = (x: unknown) => (Array.isArray(x) ? x[0] : x);
    const f = Object.fromEntries(
      Object.entries(body).map(([k, x]) => [k, typeof first(x) === 'string' ? (first(x) as string) : '']),
    );
    const a = Buffer.from(f.csrf ?? '');
    const b = Buffer.from(v.csrf);
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      return c.text('invalid or missing CSRF token: reload the page and try again', 403);
    }
    return { v, f };
  }

  async function signIn(c: Context, token: string): Promise<boolean> {
    // A new id at every sign-in: an id planted before sign-in is never promoted.
    const old = sessionId(c);
    if (old !== null) await sessions.delete(old);
    const id = await sessions.create(token, Date.now());
    if (id === null) return false;
    setCookie(c, COOKIE, id, {
      httpOnly: true,
      sameSite: 'Strict',
      secure: isSecure(c),
      path: '/ui',
      maxAge: Math.floor(deps.config.ui.sessionMaxMs / 1000),
    });
    return true;
  }

  const login: LoginGate = {
    // Read from the shared counts before each attempt: another replica's failures count here at once.
    async retryAfterS(c, tokenKey) {
      const ms = Math.max(
        await perIp.check(trust.clientAddress(c)),
        tokenKey === null ? 0 : await perToken.check(tokenKey),
      );
      return Math.ceil(ms / 1000);
    },
    async failed(c, tokenKey) {
      await perIp.fail(trust.clientAddress(c));
      if (tokenKey !== null) await perToken.fail(tokenKey);
    },
    async succeeded(_c, tokenKey) {
      if (tokenKey !== null) await perToken.reset(tokenKey);
    },
  };

  return { viewer, form, apiWithToken: (token, c) => apiFor(token, c), signIn, signOut, login, store: sessions };
}

/**
 * The positive integers a multi-valued form field (checkboxes) carried.
 * @example
 * const ids = checkedIds((await c.req.parseBody({ all: true })).ids);
 */
export function checkedIds(field: unknown): number[] {
  const values = Array.isArray(field) ? field : field ? [field] : [];
  return values.map((x) => Number(x)).filter((x) => Number.isSafeInteger(x) && x > 0);
}
