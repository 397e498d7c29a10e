/** Sign in with an API token (kept in the session cookie) and sign out. */
import type { Context, Hono } from 'hono';
import { TOKEN_PATTERN } from '../../../services/tokens.ts';
import { alert } from '../components.ts';
import { html, raw } from '../html.ts';
import { page } from '../layout.ts';
import { isCrossSiteFetch, type Session } from '../session.ts';

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
  const expired = c.req.query('expired') ? alert('Your token is no longer valid: sign in again.') : '';
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

async function signIn(c: Context, s: Session) {
  if (isCrossSiteFetch(c)) return c.text('cross-site request refused', 403);
  const body = await c.req.parseBody();
  const token = typeof body.token === 'string' ? body.token.trim() : '';
  if (!TOKEN_PATTERN.test(token)) return retry(c, 'that is not an SPM token (spm_…)');
  const me = await s.apiWithToken(token, c)('GET', '/whoami');
  if (me.status !== 200) return retry(c, 'unknown, revoked or expired token');
  s.signIn(c, token);
  return c.redirect('/ui', 303);
}

async function signOut(c: Context, s: Session) {
  const r = await s.form(c);
  if (r instanceof Response) return r;
  s.signOut(c);
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
