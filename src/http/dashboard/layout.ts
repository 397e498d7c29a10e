/**
 * The frame of every dashboard page — security headers, head, navigation, title — and the flash
 * messages a form's redirect carries back (`?ok=` / `?error=`).
 */
import type { Context } from 'hono';
import { alert, csrfField } from './components.ts';
import { html, raw, type Html } from './html.ts';
import type { Viewer } from './session.ts';

/** No inline script or style, nothing from elsewhere: `/ui/static/*` only. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const NAV_LINKS = raw(
  [
    '<a href="/ui">Queue</a>',
    '<a href="/ui/approvals">Approvals</a>',
    '<a href="/ui/tests">Tests</a>',
    '<a href="/ui/deployments">Deployments</a>',
    '<a href="/ui/reports">Reports</a>',
    '<a href="/ui/sync">Sync</a>',
  ].join(''),
);

const HEAD_START = raw(
  '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
);
const HEAD_END = raw(
  '<link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/static/app.css">' +
    '<script src="/ui/static/app.js" defer></script></head>',
);

const SIGN_OUT_BUTTON = raw('<button type="submit">Sign out</button>');

function nav(v: Viewer | null): Html {
  if (!v) return html``;
  const signOut = html`<form method="post" action="/ui/logout" class="inline">${csrfField(v)}${SIGN_OUT_BUTTON}</form>`;
  return html`<nav aria-label="Main">${NAV_LINKS}
          <span class="who">${v.name} (${v.role})</span>
          ${signOut}</nav>`;
}

/**
 * Answer with a full page: `title` as the document title and heading, the viewer's navigation
 * (none on the sign-in page), and `body`.
 * @example
 * return page(c, 'Approvals', v, html`<p>2 waiting.</p>`);
 */
export function page(c: Context, title: string, v: Viewer | null, body: Html, status = 200) {
  c.header('Content-Security-Policy', CSP);
  c.header('X-Content-Type-Options', 'nosniff');
  c.header('Referrer-Policy', 'same-origin');
  c.header('Cache-Control', 'no-store');
  const header = html`<header><a class="brand" href="/ui">SPM Orchestrator</a>${nav(v)}</header>`;
  return c.html(
    html`${HEAD_START}
      <title>${title} · SPM Orchestrator</title>${HEAD_END}
      <body>${header}<main id="main"><h1>${title}</h1>${body}</main></body></html>`.value,
    status as never,
  );
}

/**
 * The outcome a form's redirect carried back, if any.
 * @example
 * html`${flash(c)}<p>…</p>`
 */
export function flash(c: Context): Html {
  const ok = c.req.query('ok');
  const err = c.req.query('error');
  return html`${ok ? html`<p class="flash ok" role="status">${ok}</p>` : ''}${err ? alert(err) : ''}`;
}

/**
 * Redirect back to `to` after a form's API call: `?ok=okText` when it succeeded, else
 * `?error=` with the API's message.
 * @example
 * return back(c, '/ui/sync', await v.api('POST', '/sync/trigger', {}), 'sync started');
 */
export function back(c: Context, to: string, r: { status: number; body: any }, okText: string) {
  const outcome =
    r.status < 300
      ? `ok=${encodeURIComponent(okText)}`
      : `error=${encodeURIComponent(r.body?.error?.message ?? `HTTP ${r.status}`)}`;
  return c.redirect(`${to}${to.includes('?') ? '&' : '?'}${outcome}`, 303);
}
