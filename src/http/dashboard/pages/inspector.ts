/**
 * The inspector: an entry's actor — its current state on the machine's diagram, its path so far and
 * its context (secrets redacted).
 */
import type { Context, Hono } from 'hono';
import { alert } from '../components.ts';
import { html, raw } from '../html.ts';
import { page } from '../layout.ts';
import type { Session } from '../session.ts';
import { machineSvg } from '../svg.ts';

const CAPTION = raw(
  '<figcaption>The patch machine; current state outlined, states visited in bold. ' +
    'Legend: text marks the state as well as colour.</figcaption>',
);

async function showInspector(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const r = await v.api('GET', `/queue/${c.req.param('id')}/inspect`);
  if (r.status !== 200) return page(c, 'Inspector', v, alert(r.body?.error?.message ?? 'not found'), r.status);
  const i = r.body;
  const state = html`<strong id="current-state">${i.state}</strong> (revision ${i.revision}${i.live ? ', live' : ''})`;
  const diagram = raw(machineSvg(i.machine, i.status, i.path as string[]));
  return page(
    c,
    `Inspector: entry ${i.id}`,
    v,
    html`
      <p>Current state ${state} · <a href="/ui/entries/${i.id}">entry</a></p>
      <figure>${diagram}${CAPTION}</figure>
      <h2>Path so far</h2><p>${(i.path as string[]).join(' → ')}</p>
      <h2>Context (secrets redacted)</h2><pre>${JSON.stringify(i.context, null, 2)}</pre>`,
  );
}

/**
 * Mount `/ui/inspector/{id}`.
 * @example
 * inspectorPages(app, session);
 */
export function inspectorPages(app: Hono<any>, s: Session): void {
  app.get('/ui/inspector/:id{[0-9]+}', (c) => showInspector(c, s));
}
