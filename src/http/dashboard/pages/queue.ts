/**
 * The queue page (`/ui`): entries per status, filters (status, OS, severity, score band, search,
 * sort) and a table of 50 entries with a pager. The counts and the table refresh themselves
 * (`/ui/live/counts`, `/ui/live/queue`).
 */
import type { Context, Hono } from 'hono';
import { STATUSES, TARGET_OS } from '../../../machines/patch.machine.ts';
import { alert, badge, tableHead } from '../components.ts';
import { html, raw, type Html } from '../html.ts';
import { page } from '../layout.ts';
import type { Session, Viewer } from '../session.ts';

const PAGE_SIZE = 50;
const BANDS: Record<string, [number, number]> = {
  'Low risk (80–100)': [80, 100],
  'Medium (60–79)': [60, 79],
  'High (40–59)': [40, 59],
  'Very high (0–39)': [0, 39],
};
const SORTS = ['score', 'severity', 'oldest', 'newest', 'errata'];
const SEVERITIES = ['Critical', 'High', 'Medium', 'Low', 'Unknown'];
const COLUMNS = ['Id', 'Errata', 'OS', 'Severity', 'Score', 'Status', 'Queued'];
const COUNTS_ATTRS = raw('aria-label="Entries per status" class="counts" id="counts" data-live="/ui/live/counts"');

/** The queue query from the page's query string (only known keys, bounded). */
function queueQuery(c: Context) {
  const get = (k: string) => (c.req.query(k) ?? '').slice(0, 100);
  const band = BANDS[get('band')];
  const sort = SORTS.includes(get('sort')) ? get('sort') : 'score';
  const offset = Math.max(0, Math.min(10_000_000, Number(get('offset')) || 0));
  const ui = {
    status: get('status'),
    target_os: get('target_os'),
    severity: get('severity'),
    q: get('q').trim(),
    band: band ? get('band') : '',
    sort,
    offset,
  };
  const api = new URLSearchParams(
    Object.entries({
      status: ui.status,
      target_os: ui.target_os,
      severity: ui.severity,
      q: ui.q,
      sort: ui.sort,
      limit: String(PAGE_SIZE),
      offset: String(ui.offset),
      min_score: band ? String(band[0]) : '',
      max_score: band ? String(band[1]) : '',
    }).filter(([, x]) => x !== ''),
  );
  // The page's own links: the filters without empty values and without the default sort.
  const links = new URLSearchParams(
    Object.entries({
      status: ui.status,
      target_os: ui.target_os,
      severity: ui.severity,
      q: ui.q,
      band: ui.band,
      sort: ui.sort,
    }).filter(([, x]) => x !== '' && !(x === 'score')),
  );
  return { ui, api, page: links };
}

function entryRow(e: any): Html {
  const entry = html`<a href="/ui/entries/${e.id}">${e.id}</a>`;
  const errata = html`${e.errata_id} <span class="muted">${e.synopsis}</span>`;
  const score = html`${e.success_score} <span class="muted">(${e.risk_level})</span>`;
  const queued = String(e.queued_at).slice(0, 16).replace('T', ' ');
  return html`<tr>
        <td>${entry}</td><td>${errata}</td><td>${e.target_os}</td><td>${e.severity ?? ''}</td>
        <td>${score}</td><td>${badge(e.status)}</td><td>${queued}</td></tr>`;
}

async function queueTable(v: Viewer, c: Context): Promise<Html> {
  const { ui, api, page: links } = queueQuery(c);
  const list = await v.api('GET', `/queue?${api}`);
  if (list.status !== 200) return alert(list.body?.error?.message ?? 'error');
  const pager = (delta: number, text: string) => {
    const p = new URLSearchParams(links);
    p.set('offset', String(Math.max(0, ui.offset + delta)));
    return html`<a href="/ui?${p.toString()}">${text}</a>`;
  };
  const total = list.body.total as number;
  const first = Math.min(ui.offset + 1, total);
  const last = Math.min(ui.offset + PAGE_SIZE, total);
  const previous = ui.offset > 0 ? pager(-PAGE_SIZE, '← previous') : '';
  const next = ui.offset + PAGE_SIZE < total ? pager(PAGE_SIZE, 'next →') : '';
  return html`<p>${total} entries${total > PAGE_SIZE ? html` · showing ${first}–${last}` : ''}</p>
      <table>${tableHead(COLUMNS)}
      <tbody>${(list.body.items as any[]).map(entryRow)}</tbody></table>
      <p class="pager">${previous} ${next}</p>`;
}

function countsHtml(counts: Record<string, number>): Html {
  const count = ([s, n]: [string, number]) => html`<a class="count" href="/ui?status=${s}">${badge(s)} ${n}</a> `;
  return html`${Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(count)}`;
}

function options(values: readonly string[], selected: string): Html[] {
  return values.map((o) => html`<option value="${o}"${o === selected ? raw(' selected') : ''}>${o}</option>`);
}

function select(name: string, label: string, values: readonly string[], value: string): Html {
  return html`<span class="field"><label for="f-${name}">${label}</label>
      <select id="f-${name}" name="${name}"><option value="">any</option>${options(values, value)}</select></span>`;
}

async function showQueue(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const { ui, page: links } = queueQuery(c);
  const [stats, table] = await Promise.all([v.api('GET', '/queue/stats'), queueTable(v, c)]);
  const counts = (stats.body?.by_status ?? {}) as Record<string, number>;
  const status = select('status', 'Status', STATUSES, ui.status);
  const os = select('target_os', 'OS', TARGET_OS, ui.target_os);
  const severity = select('severity', 'Severity', SEVERITIES, ui.severity);
  const band = select('band', 'Score band', Object.keys(BANDS), ui.band);
  const search = html`<input id="f-q" name="q" value="${ui.q}" placeholder="errata, synopsis or CVE" maxlength="100">`;
  const sort = html`<select id="f-sort" name="sort">${options(SORTS, ui.sort)}</select>`;
  const live = `/ui/live/queue?${links.toString()}${ui.offset ? `&offset=${ui.offset}` : ''}`;
  return page(
    c,
    'Queue',
    v,
    html`
      <section ${COUNTS_ATTRS}>${countsHtml(counts)}</section>
      <form method="get" action="/ui" class="filters" aria-label="Filter the queue">
        ${status} ${os}
        ${severity} ${band}
        <span class="field"><label for="f-q">Search</label>${search}</span>
        <span class="field"><label for="f-sort">Sort by</label>${sort}</span>
        <button type="submit">Filter</button></form>
      <div id="queue-table" data-live="${live}" aria-live="polite">${table}</div>`,
  );
}

async function liveTable(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return c.text('', 401);
  return c.html((await queueTable(v, c)).value);
}

async function liveCounts(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return c.text('', 401);
  const stats = await v.api('GET', '/queue/stats');
  return c.html(countsHtml((stats.body?.by_status ?? {}) as Record<string, number>).value);
}

/**
 * Mount `/ui` and its live parts `/ui/live/queue` and `/ui/live/counts`.
 * @example
 * queuePages(app, session);
 */
export function queuePages(app: Hono<any>, s: Session): void {
  app.get('/ui', (c) => showQueue(c, s));
  app.get('/ui/live/queue', (c) => liveTable(c, s));
  app.get('/ui/live/counts', (c) => liveCounts(c, s));
}
