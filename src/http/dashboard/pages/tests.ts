/** The tests page: each test lane (OS, test system), what it is doing now, and how many tests it ran. */
import type { Context, Hono } from 'hono';
import { alert, tableHead } from '../components.ts';
import { html, raw, type Html } from '../html.ts';
import { page } from '../layout.ts';
import type { Session, Viewer } from '../session.ts';

const COLUMNS = ['OS', 'Test system', 'Now', 'Tests done'];
const LANES_ATTRS = raw('id="lanes" data-live="/ui/live/lanes" aria-live="polite"');
const NO_LANES = raw('<p>No test lanes: the test engine is not configured (UYUNI_URL and SALT_API_URL).</p>');

function laneRow(l: any): Html {
  const now = l.paused
    ? html`<span class="badge bad">paused</span> ${l.paused}`
    : l.entryId
      ? html`<a href="/ui/entries/${l.entryId}">entry ${l.entryId}</a>`
      : 'idle';
  return html`<tr><td>${l.os}</td><td>${l.system}</td><td>${now}</td><td>${l.completed}</td></tr>`;
}

async function lanesHtml(v: Viewer): Promise<Html> {
  const r = await v.api('GET', '/lanes');
  const lanes = (r.body?.lanes ?? []) as any[];
  if (!r.body?.enabled) return NO_LANES;
  return html`${r.body.error ? alert(r.body.error) : ''}
      <table>${tableHead(COLUMNS)}
      <tbody>${lanes.map(laneRow)}</tbody></table>`;
}

async function showTests(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const lanes = await lanesHtml(v);
  return page(c, 'Tests', v, html`<section ${LANES_ATTRS}>${lanes}</section>`);
}

async function liveLanes(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return c.text('', 401);
  return c.html((await lanesHtml(v)).value);
}

/**
 * Mount `/ui/tests` and its live part `/ui/live/lanes`.
 * @example
 * testPages(app, session);
 */
export function testPages(app: Hono<any>, s: Session): void {
  app.get('/ui/tests', (c) => showTests(c, s));
  app.get('/ui/live/lanes', (c) => liveLanes(c, s));
}
