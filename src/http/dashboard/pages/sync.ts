/** The sync page: the last UYUNI sync (status, statistics, error) and, for an operator, "Sync now". */
import type { Context, Hono } from 'hono';
import { roleAtLeast } from '../../../services/tokens.ts';
import { csrfField } from '../components.ts';
import { html, raw, type Html } from '../html.ts';
import { back, flash, page } from '../layout.ts';
import type { Session } from '../session.ts';

const SYNC_NOW = raw('<button type="submit">Sync now</button>');

function lastRun(r: { status: number; body: any }): Html {
  const last = r.body?.last_run;
  if (!last) return html`<p>No sync yet${r.status !== 200 ? html` (${r.body?.error?.message ?? ''})` : ''}.</p>`;
  const at = String(last.started_at ?? '')
    .replace('T', ' ')
    .slice(0, 19);
  const error = last.error ? html` — ${last.error}` : '';
  return html`<p>Last run ${last.id}: <strong>${last.status}</strong> at ${at}${error}</p>
        <pre>${JSON.stringify(last.stats ?? {}, null, 2)}</pre>`;
}

async function showSync(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const r = await v.api('GET', '/sync/status');
  const trigger = roleAtLeast(v.role, 'operator')
    ? html`<form method="post" action="/ui/sync/trigger">${csrfField(v)}${SYNC_NOW}</form>`
    : '';
  return page(
    c,
    'Sync',
    v,
    html`${flash(c)}
      ${lastRun(r)}
      ${trigger}`,
  );
}

async function triggerSync(c: Context, s: Session) {
  const r = await s.form(c);
  if (r instanceof Response) return r;
  return back(c, '/ui/sync', await r.v.api('POST', '/sync/trigger', {}), 'sync started');
}

/**
 * Mount `/ui/sync` and its "Sync now" form.
 * @example
 * syncPages(app, session);
 */
export function syncPages(app: Hono<any>, s: Session): void {
  app.get('/ui/sync', (c) => showSync(c, s));
  app.post('/ui/sync/trigger', (c) => triggerSync(c, s));
}
