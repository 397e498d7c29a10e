/**
 * Sign in with an API token (checked once, then kept server-side: the cookie holds a random session
 * id) and sign out (the session ends server-side). Failed sign-ins are limited per client address and
 * per token (429 with Retry-After).
 */
import type { Context, Hono } from 'hono';
import { TOKEN_PATTERN } from '../../../services/tokens.ts';
import { alert } from '../components.ts';
import { html, raw } from '../html.ts';
import { page } from '../layout.ts';
import { isCrossOrigin, type Session } from '../session.ts';

const TOKEN_INPUT = raw(
  '<input id="token" name="token" type="password" autocomplete="off" required ' +
    'pattern="spm_[A-Za-z0-9_\\-]{43}" aria-describedby="token-help">',
);
const TOKEN_HELP = raw(
  '<p id="token-help" class="help">Create one with ' +
    '<code>spm-orchestrator token create --name you --role approver</code>.</p>',
);

const retry = (c: Context, error: string) => c.redirect(`/ui/login?error=${encodeURIComponent(error)}`, 303);

function showSignIn(c: Context) {
  const expired = c.req.query('expired')
    ? alert('Your session ended (signed out, idle too long, or the token is no longer valid): sign in again.')
    : '';
  return page(
    c,
    'Sign in',
    null,
    html`
    ${expired}
    ${c.req.query('error') ? alert(c.req.query('error')) : ''}
    <form method="post" action="/ui/login" class="card">
      <label for="token">API token</label>
      ${TOKEN_INPUT}
      ${TOKEN_HELP}
      <button type="submit">Sign in</button>
    </form>`,
  );
}

function tooMany(c: Context, seconds: number) {
  c.header('Retry-After', String(seconds));
  return page(
    c,
    'Sign in',
    null,
    alert(`Too many failed sign-ins: try again in ${Math.ceil(seconds / 60)} minute(s).`),
    429,
  );
}

async function signIn(c: Context, s: Session) {
  if (isCrossOrigin(c)) return c.text('cross-site request refused', 403);
  // The client's address first, before the body is read.
  const before = await s.login.retryAfterS(c, null);
  if (before > 0) return tooMany(c, before);
  let body: Record<string, unknown>;
  try {
    body = await c.req.parseBody();
  } catch {
    return retry(c, 'the sign-in form could not be read');
  }
  const token = typeof body.token === 'string' ? body.token.trim() : '';
  // Per token: its display prefix (what `token list` shows) names the account being tried.
  const key = TOKEN_PATTERN.test(token) ? token.slice(0, 12) : null;
  const wait = await s.login.retryAfterS(c, key);
  if (wait > 0) return tooMany(c, wait);
  if (key === null) {
    await s.login.failed(c, null);
    return retry(c, 'that is not an SPM token (spm_…)');
  }
  const me = await s.apiWithToken(token, c)('GET', '/whoami');
  if (me.status !== 200) {
    await s.login.failed(c, key);
    return retry(c, 'unknown, revoked or expired token');
  }
  await s.login.succeeded(c, key);
  if (!(await s.signIn(c, token))) return retry(c, 'unknown, revoked or expired token');
  return c.redirect('/ui', 303);
}

async function signOut(c: Context, s: Session) {
  const r = await s.form(c);
  if (r instanceof Response) return r;
  await s.signOut(c);
  return c.redirect('/ui/login', 303);
}

/**
 * Mount `/ui/login` (page and form) and `/ui/logout`.
 * @example
 * loginPages(app, session);
 */
export function loginPages(app: Hono<any>, s: Session): void {
  app.get('/ui/login', (c) => showSignIn(c));
  app.post('/ui/login', (c) => signIn(c, s));
  app.post('/ui/logout', (c) => signOut(c, s));
}
