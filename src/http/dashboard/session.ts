/**
 * Who is signed in to the dashboard, and the guard of every form it posts.
 *
 * The API token is kept in an HttpOnly, SameSite=Strict cookie (Secure behind HTTPS); a trusted
 * reverse proxy may sign users in instead (UI_PROXY_USER_HEADER, only with TRUST_PROXY=true). Every
 * form carries a CSRF token bound to the session (HMAC with a per-process secret), and a POST whose
 * Origin or Sec-Fetch-Site says cross-site is refused. The dashboard reads and decides through the
 * API in-process (`app.request`) as the signed-in user, so the API's checks and audit apply.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { BaseDeps } from '../../interfaces.ts';
import { ROLES, TOKEN_PATTERN, type Role } from '../../services/tokens.ts';
import { internalAuthHeaders } from '../auth.ts';

const COOKIE = 'spm_session';
/** A sign-in lasts a working day. */
const SESSION_MAX_AGE_SECONDS = 12 * 3600;

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

/** The dashboard's sign-in state and form guard (one per mounted dashboard). */
export interface Session {
  /** The signed-in viewer, or a redirect to the sign-in page. */
  viewer(c: Context): Promise<Viewer | Response>;
  /** POST guard: same-site only, CSRF token of this session; else a 403 (or the sign-in redirect). */
  form(c: Context): Promise<PostedForm | Response>;
  /** The API as the holder of `token` (sign-in checks the token with it). */
  apiWithToken(token: string, c: Context): Api;
  /** Keep the token in the session cookie. */
  signIn(c: Context, token: string): void;
  /** Forget the session cookie. */
  signOut(c: Context): void;
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

const isSecure = (c: Context) => c.req.url.startsWith('https:') || c.req.header('x-forwarded-proto') === 'https';

/**
 * The dashboard's session over `app` (the root application, whose `/api/v1` it calls).
 * @example
 * const session = createSession(deps, app);
 * const v = await session.viewer(c);
 */
export function createSession(deps: BaseDeps, app: Hono<any>): Session {
  // Per-process secret for CSRF tokens (a restart signs the user out of forms, not of the session).
  const secret = randomBytes(32);
  const csrfOf = (token: string) => createHmac('sha256', secret).update(token).digest('base64url');

  const apiFor =
    (token: string | { name: string; role: Role }, c: Context): Api =>
    async (method, path, body) => {
      const auth =
        typeof token === 'string' ? { authorization: `Bearer ${token}` } : internalAuthHeaders(token.name, token.role);
      const json = body !== undefined ? { 'content-type': 'application/json' } : {};
      const res = await app.request(`/api/v1${path}`, {
        method,
        headers: { ...auth, 'user-agent': `${c.req.header('user-agent') ?? ''} (dashboard)`, ...json },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };

  const signOut = (c: Context) => deleteCookie(c, COOKIE, { path: '/ui' });

  /** A user named by the trusted reverse proxy, with the role it names (else the default role). */
  function proxyViewer(c: Context): Viewer | null {
    const proxy = deps.config.uiProxy;
    const proxyUser = proxy ? c.req.header(proxy.userHeader)?.trim() : undefined;
    if (!proxy || !proxyUser || !/^[\w.@-]{1,100}$/.test(proxyUser)) return null;
    const asked = proxy.roleHeader ? c.req.header(proxy.roleHeader)?.trim().toLowerCase() : undefined;
    const role: Role = asked && (ROLES as readonly string[]).includes(asked) ? (asked as Role) : proxy.defaultRole;
    const csrf = csrfOf(`proxy:${proxyUser}:${role}`);
    return { name: `proxy:${proxyUser}`, role, csrf, api: apiFor({ name: proxyUser, role }, c) };
  }

  async function viewer(c: Context): Promise<Viewer | Response> {
    const proxied = proxyViewer(c);
    if (proxied) return proxied;
    const token = getCookie(c, COOKIE);
    if (!token || !TOKEN_PATTERN.test(token)) return c.redirect('/ui/login', 303);
    const api = apiFor(token, c);
    const me = await api('GET', '/whoami');
    if (me.status !== 200) {
      signOut(c);
      return c.redirect('/ui/login?expired=1', 303);
    }
    return { name: me.body.name, role: me.body.role, csrf: csrfOf(token), api };
  }

  async function form(c: Context): Promise<PostedForm | Response> {
    const origin = c.req.header('origin');
    const host = c.req.header('host');
    if (isCrossSiteFetch(c) || (origin && host && new URL(origin).host !== host)) {
      return c.text('cross-site request refused', 403);
    }
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const body = await c.req.parseBody();
    const f = Object.fromEntries(Object.entries(body).map(([k, x]) => [k, typeof x === 'string' ? x : '']));
    const a = Buffer.from(f.csrf ?? '');
    const b = Buffer.from(v.csrf);
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      return c.text('invalid or missing CSRF token: reload the page and try again', 403);
    }
    return { v, f };
  }

  function signIn(c: Context, token: string) {
    const secure = isSecure(c);
    setCookie(c, COOKIE, token, {
      httpOnly: true,
      sameSite: 'Strict',
      secure,
      path: '/ui',
      maxAge: SESSION_MAX_AGE_SECONDS,
    });
  }

  return { viewer, form, apiWithToken: (token, c) => apiFor(token, c), signIn, signOut };
}

/**
 * The positive integers a multi-valued form field (checkboxes) carried.
 * @example
 * const ids = checkedIds((await c.req.parseBody({ all: true })).ids);
 */
export function checkedIds(field: unknown): number[] {
  const values = Array.isArray(field) ? field : field ? [field] : [];
  return values.map((x) => Number(x)).filter((x) => Number.isInteger(x) && x > 0);
}
