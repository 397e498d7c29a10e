/**
 * The operator dashboard, served by the daemon under `/ui` (server-rendered, no separate process,
 * works without internet). It is a client of the daemon's own API: every read and every decision
 * goes through `/api/v1` in-process (`app.request`) with the signed-in token, so validation, role
 * checks, the audit log and the actors' transitions are exactly the API's.
 *
 * Security: the API token is kept in an HttpOnly, SameSite=Strict cookie (Secure behind HTTPS);
 * every form carries a CSRF token bound to that cookie (HMAC), and a POST whose Origin or
 * Sec-Fetch-Site says cross-site is refused; Content-Security-Policy allows no inline script or
 * style (`/ui/static/*` only); every value is escaped (`html`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { BaseDeps } from '../../interfaces.ts';
import { roleAtLeast, ROLES, TOKEN_PATTERN, type Role } from '../../services/tokens.ts';
import { internalAuthHeaders } from '../auth.ts';
import { html, raw, type Html } from './html.ts';
import { APP_CSS, APP_JS } from './static.ts';
import { machineSvg } from './svg.ts';

const COOKIE = 'spm_session';
const STATUSES = ['queued', 'testing', 'needs_reboot', 'rebooting', 'pending_retry', 'passed', 'failed', 'pending_approval', 'snoozed', 'approved', 'rejected',
  'promoting', 'prod_pending', 'prod_applied', 'prod_rollback', 'completed', 'rolled_back', 'removed', 'needs_attention'];

type Api = (method: string, path: string, body?: unknown) => Promise<{ status: number; body: any }>;
interface Viewer {
  name: string;
  role: Role;
  csrf: string;
  api: Api;
}

export function dashboardRoutes(deps: BaseDeps, app: Hono<any>): void {
  // Per-process secret for CSRF tokens (a restart signs the user out of forms, not of the session).
  const secret = randomBytes(32);
  const csrfOf = (token: string) => createHmac('sha256', secret).update(token).digest('base64url');

  const apiFor = (token: string | { name: string; role: Role }, c: Context): Api => async (method, path, body) => {
    const auth = typeof token === 'string' ? { authorization: `Bearer ${token}` } : internalAuthHeaders(token.name, token.role);
    const res = await app.request(`/api/v1${path}`, {
      method,
      headers: { ...auth, 'user-agent': `${c.req.header('user-agent') ?? ''} (dashboard)`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  const secure = (c: Context) => c.req.url.startsWith('https:') || c.req.header('x-forwarded-proto') === 'https';

  function page(c: Context, title: string, v: Viewer | null, body: Html, status = 200) {
    c.header('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'same-origin');
    c.header('Cache-Control', 'no-store');
    const nav = v
      ? html`<nav aria-label="Main"><a href="/ui">Queue</a><a href="/ui/approvals">Approvals</a><a href="/ui/tests">Tests</a><a href="/ui/deployments">Deployments</a><a href="/ui/reports">Reports</a><a href="/ui/sync">Sync</a>
          <span class="who">${v.name} (${v.role})</span>
          <form method="post" action="/ui/logout" class="inline"><input type="hidden" name="csrf" value="${v.csrf}"><button type="submit">Sign out</button></form></nav>`
      : html``;
    return c.html(html`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
      <title>${title} · SPM Orchestrator</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/ui/static/app.css"><script src="/ui/static/app.js" defer></script></head>
      <body><header><a class="brand" href="/ui">SPM Orchestrator</a>${nav}</header><main id="main"><h1>${title}</h1>${body}</main></body></html>`.value, status as never);
  }

  /** The signed-in viewer, or a redirect to the sign-in page. */
  async function viewer(c: Context): Promise<Viewer | Response> {
    // Signed in by a trusted reverse proxy (UI_PROXY_USER_HEADER, only with TRUST_PROXY=true).
    const proxy = deps.config.uiProxy;
    const proxyUser = proxy ? c.req.header(proxy.userHeader)?.trim() : undefined;
    if (proxy && proxyUser && /^[\w.@-]{1,100}$/.test(proxyUser)) {
      const asked = proxy.roleHeader ? c.req.header(proxy.roleHeader)?.trim().toLowerCase() : undefined;
      const role: Role = asked && (ROLES as readonly string[]).includes(asked) ? (asked as Role) : proxy.defaultRole;
      return { name: `proxy:${proxyUser}`, role, csrf: csrfOf(`proxy:${proxyUser}:${role}`), api: apiFor({ name: proxyUser, role }, c) };
    }
    const token = getCookie(c, COOKIE);
    if (!token || !TOKEN_PATTERN.test(token)) return c.redirect('/ui/login', 303);
    const api = apiFor(token, c);
    const me = await api('GET', '/whoami');
    if (me.status !== 200) {
      deleteCookie(c, COOKIE, { path: '/ui' });
      return c.redirect('/ui/login?expired=1', 303);
    }
    return { name: me.body.name, role: me.body.role, csrf: csrfOf(token), api };
  }

  /** POST guard: same-site only, CSRF token of this session. */
  async function form(c: Context): Promise<{ v: Viewer; f: Record<string, string> } | Response> {
    const site = c.req.header('sec-fetch-site');
    const origin = c.req.header('origin');
    const host = c.req.header('host');
    if ((site && site !== 'same-origin' && site !== 'none') || (origin && host && new URL(origin).host !== host)) {
      return c.text('cross-site request refused', 403);
    }
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const body = await c.req.parseBody();
    const f = Object.fromEntries(Object.entries(body).map(([k, x]) => [k, typeof x === 'string' ? x : '']));
    const a = Buffer.from(f.csrf ?? '');
    const b = Buffer.from(v.csrf);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return c.text('invalid or missing CSRF token: reload the page and try again', 403);
    return { v, f };
  }

  const flash = (c: Context) => {
    const ok = c.req.query('ok');
    const err = c.req.query('error');
    return html`${ok ? html`<p class="flash ok" role="status">${ok}</p>` : ''}${err ? html`<p class="flash error" role="alert">${err}</p>` : ''}`;
  };
  const back = (c: Context, to: string, r: { status: number; body: any }, okText: string) =>
    c.redirect(`${to}${to.includes('?') ? '&' : '?'}${r.status < 300 ? `ok=${encodeURIComponent(okText)}` : `error=${encodeURIComponent(r.body?.error?.message ?? `HTTP ${r.status}`)}`}`, 303);

  // ------------------------------------------------------------------ static, sign-in
  app.get('/ui/static/app.css', (c) => c.body(APP_CSS, 200, { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'max-age=300' }));
  app.get('/ui/static/app.js', (c) => c.body(APP_JS, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300' }));

  app.get('/ui/login', (c) => page(c, 'Sign in', null, html`
    ${c.req.query('expired') ? html`<p class="flash error" role="alert">Your token is no longer valid: sign in again.</p>` : ''}
    ${c.req.query('error') ? html`<p class="flash error" role="alert">${c.req.query('error')}</p>` : ''}
    <form method="post" action="/ui/login" class="card">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" required pattern="spm_[A-Za-z0-9_\\-]{43}" aria-describedby="token-help">
      <p id="token-help" class="help">Create one with <code>spm-orchestrator token create --name you --role approver</code>.</p>
      <button type="submit">Sign in</button>
    </form>`));

  app.post('/ui/login', async (c) => {
    const site = c.req.header('sec-fetch-site');
    if (site && site !== 'same-origin' && site !== 'none') return c.text('cross-site request refused', 403);
    const body = await c.req.parseBody();
    const token = typeof body.token === 'string' ? body.token.trim() : '';
    if (!TOKEN_PATTERN.test(token)) return c.redirect('/ui/login?error=' + encodeURIComponent('that is not an SPM token (spm_…)'), 303);
    const me = await apiFor(token, c)('GET', '/whoami');
    if (me.status !== 200) return c.redirect('/ui/login?error=' + encodeURIComponent('unknown, revoked or expired token'), 303);
    setCookie(c, COOKIE, token, { httpOnly: true, sameSite: 'Strict', secure: secure(c), path: '/ui', maxAge: 12 * 3600 });
    return c.redirect('/ui', 303);
  });

  app.post('/ui/logout', async (c) => {
    const r = await form(c);
    if (r instanceof Response) return r;
    deleteCookie(c, COOKIE, { path: '/ui' });
    return c.redirect('/ui/login', 303);
  });

  // ------------------------------------------------------------------ queue
  const BANDS: Record<string, [number, number]> = { 'Low risk (80–100)': [80, 100], 'Medium (60–79)': [60, 79], 'High (40–59)': [40, 59], 'Very high (0–39)': [0, 39] };
  const SORTS = ['score', 'severity', 'oldest', 'newest', 'errata'];
  /** The queue query from the page's query string (only known keys, bounded). */
  function queueQuery(c: Context) {
    const get = (k: string) => (c.req.query(k) ?? '').slice(0, 100);
    const band = BANDS[get('band')];
    const sort = SORTS.includes(get('sort')) ? get('sort') : 'score';
    const offset = Math.max(0, Math.min(10_000_000, Number(get('offset')) || 0));
    const ui = { status: get('status'), target_os: get('target_os'), severity: get('severity'), q: get('q').trim(), band: band ? get('band') : '', sort, offset };
    const api = new URLSearchParams(Object.entries({
      status: ui.status, target_os: ui.target_os, severity: ui.severity, q: ui.q, sort: ui.sort, limit: '50', offset: String(ui.offset),
      min_score: band ? String(band[0]) : '', max_score: band ? String(band[1]) : '',
    }).filter(([, x]) => x !== ''));
    const page = new URLSearchParams(Object.entries({ status: ui.status, target_os: ui.target_os, severity: ui.severity, q: ui.q, band: ui.band, sort: ui.sort }).filter(([, x]) => x !== '' && !(x === 'score')));
    return { ui, api, page };
  }

  async function queueTable(v: Viewer, c: Context): Promise<Html> {
    const { ui, api, page } = queueQuery(c);
    const list = await v.api('GET', `/queue?${api}`);
    if (list.status !== 200) return html`<p class="flash error" role="alert">${list.body?.error?.message ?? 'error'}</p>`;
    const pager = (delta: number, text: string) => {
      const p = new URLSearchParams(page);
      p.set('offset', String(Math.max(0, ui.offset + delta)));
      return html`<a href="/ui?${p.toString()}">${text}</a>`;
    };
    const total = list.body.total as number;
    return html`<p>${total} entries${total > 50 ? html` · showing ${Math.min(ui.offset + 1, total)}–${Math.min(ui.offset + 50, total)}` : ''}</p>
      <table><thead><tr><th scope="col">Id</th><th scope="col">Errata</th><th scope="col">OS</th><th scope="col">Severity</th><th scope="col">Score</th><th scope="col">Status</th><th scope="col">Queued</th></tr></thead>
      <tbody>${(list.body.items as any[]).map((e) => html`<tr>
        <td><a href="/ui/entries/${e.id}">${e.id}</a></td><td>${e.errata_id} <span class="muted">${e.synopsis}</span></td><td>${e.target_os}</td><td>${e.severity ?? ''}</td>
        <td>${e.success_score} <span class="muted">(${e.risk_level})</span></td><td>${badge(e.status)}</td><td>${String(e.queued_at).slice(0, 16).replace('T', ' ')}</td></tr>`)}</tbody></table>
      <p class="pager">${ui.offset > 0 ? pager(-50, '← previous') : ''} ${ui.offset + 50 < total ? pager(50, 'next →') : ''}</p>`;
  }

  app.get('/ui', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const { ui, page: qs } = queueQuery(c);
    const [stats, table] = await Promise.all([v.api('GET', '/queue/stats'), queueTable(v, c)]);
    const counts = (stats.body?.by_status ?? {}) as Record<string, number>;
    const select = (name: string, label: string, options: string[], value: string) => html`<span class="field"><label for="f-${name}">${label}</label>
      <select id="f-${name}" name="${name}"><option value="">any</option>${options.map((o) => html`<option value="${o}"${o === value ? raw(' selected') : ''}>${o}</option>`)}</select></span>`;
    return page(c, 'Queue', v, html`
      <section aria-label="Entries per status" class="counts" id="counts" data-live="/ui/live/counts">${countsHtml(counts)}</section>
      <form method="get" action="/ui" class="filters" aria-label="Filter the queue">
        ${select('status', 'Status', STATUSES, ui.status)} ${select('target_os', 'OS', ['ubuntu', 'debian', 'rhel'], ui.target_os)}
        ${select('severity', 'Severity', ['Critical', 'High', 'Medium', 'Low', 'Unknown'], ui.severity)} ${select('band', 'Score band', Object.keys(BANDS), ui.band)}
        <span class="field"><label for="f-q">Search</label><input id="f-q" name="q" value="${ui.q}" placeholder="errata, synopsis or CVE" maxlength="100"></span>
        <span class="field"><label for="f-sort">Sort by</label><select id="f-sort" name="sort">${SORTS.map((o) => html`<option value="${o}"${o === ui.sort ? raw(' selected') : ''}>${o}</option>`)}</select></span>
        <button type="submit">Filter</button></form>
      <div id="queue-table" data-live="/ui/live/queue?${qs.toString()}${ui.offset ? `&offset=${ui.offset}` : ''}" aria-live="polite">${table}</div>`);
  });

  app.get('/ui/live/queue', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return c.text('', 401);
    return c.html((await queueTable(v, c)).value);
  });

  app.get('/ui/live/counts', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return c.text('', 401);
    const stats = await v.api('GET', '/queue/stats');
    return c.html(countsHtml((stats.body?.by_status ?? {}) as Record<string, number>).value);
  });

  // ------------------------------------------------------------------ reports
  app.get('/ui/reports', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const days = Math.max(1, Math.min(3650, Number(c.req.query('days')) || 30));
    const [sum, comp] = await Promise.all([v.api('GET', `/reports/summary?days=${days}`), v.api('GET', `/reports/compliance?days=${days}`)]);
    const kvTable = (title: string, o: Record<string, number> | undefined) => html`<h3>${title}</h3>${o && Object.keys(o).length > 0
      ? html`<table class="compact"><tbody>${Object.entries(o).map(([k, n]) => html`<tr><th scope="row">${k}</th><td>${n}</td></tr>`)}</tbody></table>` : html`<p class="muted">none</p>`}`;
    const s = sum.body ?? {};
    const t = comp.body?.total ?? {};
    return page(c, 'Reports', v, html`
      <form method="get" action="/ui/reports" class="filters"><span class="field"><label for="f-days">Period (days)</label><input id="f-days" name="days" type="number" min="1" max="3650" value="${days}"></span><button type="submit">Show</button></form>
      <section aria-labelledby="h-compliance"><h2 id="h-compliance">Compliance</h2>
        <p>${t.deployed ?? 0} of ${t.needed ?? 0} Security Advisories deployed (${t.deployed_percent ?? '—'} %), <strong>${t.overdue ?? 0} overdue</strong> (known for more than ${days} days, not deployed).</p>
        <table><thead><tr><th scope="col">OS</th><th scope="col">Severity</th><th scope="col">Needed</th><th scope="col">Deployed</th><th scope="col">In progress</th><th scope="col">Overdue</th></tr></thead>
        <tbody>${((comp.body?.rows ?? []) as any[]).map((r) => html`<tr><td>${r.target_os}</td><td>${r.severity}</td><td>${r.needed}</td><td>${r.deployed}</td><td>${r.in_progress}</td><td>${r.overdue}</td></tr>`)}</tbody></table></section>
      <section aria-labelledby="h-summary"><h2 id="h-summary">Summary (last ${days} days)</h2>
        <p>${s.pending_approvals?.n ?? 0} waiting for approval${s.pending_approvals?.oldest_hours ? html`, the oldest for ${s.pending_approvals.oldest_hours} h` : ''}.</p>
        <div class="grid">${kvTable('Queue by status', s.queue)}${kvTable('Tests', s.tests)}${kvTable('Deployments', s.deployments)}${kvTable('Rollbacks', s.rollbacks)}${kvTable('Notifications', s.notifications)}</div></section>`);
  });

  // ------------------------------------------------------------------ entry
  app.get('/ui/entries/:id{[0-9]+}', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const id = c.req.param('id');
    const [r, hist] = await Promise.all([v.api('GET', `/queue/${id}`), v.api('GET', `/queue/${id}/history`)]);
    if (r.status !== 200) return page(c, `Entry ${id}`, v, html`<p class="flash error" role="alert">${r.body?.error?.message ?? 'not found'}</p>`, r.status);
    const { entry, errata, risk_profile: risk, tests, allowed_events: allowed } = r.body;
    const test = (tests as any[]).at(-1);
    const phases = test ? (await v.api('GET', `/tests/${test.id}/phases`)).body?.phases ?? [] : [];
    const canDecide = roleAtLeast(v.role, 'approver') && entry.status === 'pending_approval' || (roleAtLeast(v.role, 'approver') && entry.status === 'snoozed');
    const checks = (test?.metrics_delta ?? []) as any[];
    return page(c, `${entry.errata_id} (${entry.target_os})`, v, html`${flash(c)}
      <p>Status ${badge(entry.status)} ${entry.status_reason ? html`— ${entry.status_reason}` : ''} · <a href="/ui/inspector/${entry.id}">Inspector</a></p>
      <section aria-labelledby="h-errata"><h2 id="h-errata">Errata</h2>
        <p>${errata?.synopsis ?? ''} · ${errata?.advisory_type ?? ''} · severity ${errata?.severity ?? '?'}${errata?.cvss_score ? html` (CVSS ${errata.cvss_score})` : ''}</p>
        <p>CVEs: ${(errata?.cves ?? []).join(', ') || 'none'} · packages: ${((errata?.packages ?? []) as any[]).map((p) => p.name).join(', ') || 'not fetched'}</p></section>
      <section aria-labelledby="h-score"><h2 id="h-score">Success score ${entry.success_score} (${entry.risk_level})</h2>
        ${risk?.score_breakdown ? html`<table class="compact"><tbody>${Object.entries(risk.score_breakdown).filter(([k]) => !['score', 'risk_level'].includes(k)).map(([k, x]) => html`<tr><th scope="row">${k}</th><td>${String(x)}</td></tr>`)}</tbody></table>` : html`<p>No breakdown yet.</p>`}</section>
      ${canDecide ? decisionForms(v, entry.id, `/ui/entries/${entry.id}`) : ''}
      <section aria-labelledby="h-evidence"><h2 id="h-evidence">Evidence</h2>
        ${test ? html`<p>Test ${test.id} on ${test.test_system_name ?? '?'}: <strong>${test.result}</strong>${test.failure_reason ? html` — ${test.failure_reason}` : ''}${test.required_reboot ? ' · rebooted' : ''}${test.rollback_type ? html` · rollback ${test.rollback_type} ${test.rollback_status ?? ''}` : ''}</p>
          <table><thead><tr><th scope="col">Check</th><th scope="col">Baseline</th><th scope="col">After</th><th scope="col">Delta</th><th scope="col">Limit</th><th scope="col">Result</th><th scope="col">Chart</th></tr></thead>
          <tbody>${checks.map((k) => html`<tr><td>${k.check}</td><td>${fmt(k.baseline)}</td><td>${fmt(k.post)}</td><td>${fmt(k.delta)}</td><td>${k.limit}</td><td>${k.ok === true ? 'pass' : k.ok === false ? 'FAIL' : 'no data'}</td><td>${barChart(k)}</td></tr>`)}</tbody></table>
          <p>Services after the patch: ${Object.entries(test.services_post_patch ?? {}).map(([s, a]) => html`<span class="svc ${a === true ? 'up' : a === false ? 'down' : 'unknown'}">${s}: ${a === true ? 'active' : a === false ? 'NOT active' : 'unknown'}</span> `)}</p>
          <h3>Phases</h3><ol class="timeline">${(phases as any[]).map((p) => html`<li><strong>${p.phase}</strong> ${p.outcome ?? ''} <span class="muted">${String(p.started_at ?? '').slice(11, 19)}${p.ended_at ? html`–${String(p.ended_at).slice(11, 19)}` : ''}</span>${p.error ? html` — ${p.error}` : ''}</li>`)}</ol>` : html`<p>Not tested yet.</p>`}
      </section>
      <section aria-labelledby="h-history"><h2 id="h-history">History</h2>
        <table><thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Event</th><th scope="col">From → to</th><th scope="col">Who</th></tr></thead>
        <tbody>${((hist.body?.transitions ?? []) as any[]).map((t) => html`<tr><td>${t.seq}</td><td>${String(t.at).replace('T', ' ').slice(0, 19)}</td><td>${t.event_type}${t.payload?.reason ? html` — ${t.payload.reason}` : ''}</td><td>${t.from_state ?? '∅'} → ${t.to_state}</td><td>${t.actor}</td></tr>`)}</tbody></table>
        <p class="muted">Allowed now: ${(allowed ?? []).join(', ') || 'nothing'}</p></section>`);
  });

  // ------------------------------------------------------------------ approvals
  app.get('/ui/approvals', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const r = await v.api('GET', '/approvals/pending');
    const items = (r.body?.items ?? []) as any[];
    const approver = roleAtLeast(v.role, 'approver');
    return page(c, 'Approvals', v, html`${flash(c)}
      <p>${items.length} waiting, oldest first.</p>
      ${approver && items.length > 0 ? html`<form method="post" action="/ui/approvals/batch" id="batch"><input type="hidden" name="csrf" value="${v.csrf}"></form>` : ''}
      <table><thead><tr>${approver ? html`<th scope="col">Select</th>` : ''}<th scope="col">Entry</th><th scope="col">Errata</th><th scope="col">Score</th><th scope="col">Hours waiting</th><th scope="col">Decision</th></tr></thead>
      <tbody>${items.map((e) => html`<tr>
        ${approver ? html`<td><input type="checkbox" form="batch" name="ids" value="${e.id}" aria-label="select ${e.errata_id}"></td>` : ''}
        <td><a href="/ui/entries/${e.id}">${e.id}</a></td><td>${e.errata_id} (${e.target_os})</td><td>${e.success_score ?? ''}</td>
        <td>${e.hours_pending !== undefined && e.hours_pending !== null ? Number(e.hours_pending).toFixed(1) : ''}</td>
        <td>${approver ? decisionForms(v, e.id, '/ui/approvals') : html`<span class="muted">approver role needed</span>`}</td></tr>`)}</tbody></table>
      ${approver && items.length > 0 ? html`<p><button type="submit" form="batch">Approve selected</button></p>` : ''}`);
  });

  app.post('/ui/approvals/:id{[0-9]+}/:action{approve|reject|snooze}', async (c) => {
    const r = await form(c);
    if (r instanceof Response) return r;
    const { v, f } = r;
    const id = c.req.param('id');
    const action = c.req.param('action');
    const to = f.back?.startsWith('/ui') ? f.back : `/ui/entries/${id}`;
    const body: Record<string, unknown> = {};
    if (f.reason) body.reason = f.reason;
    if (action === 'snooze' && f.until) body.until = new Date(`${f.until}T00:00:00Z`).toISOString();
    const res = await v.api('POST', `/approvals/${id}/${action}`, body);
    return back(c, to, res, `${action === 'approve' ? 'approved' : action === 'reject' ? 'rejected' : 'snoozed'} entry ${id}`);
  });

  app.post('/ui/approvals/batch', async (c) => {
    const r = await form(c);
    if (r instanceof Response) return r;
    const all = (await c.req.parseBody({ all: true })).ids;
    const ids = (Array.isArray(all) ? all : all ? [all] : []).map((x) => Number(x)).filter((x) => Number.isInteger(x) && x > 0);
    if (ids.length === 0) return c.redirect('/ui/approvals?error=' + encodeURIComponent('select at least one entry'), 303);
    const res = await r.v.api('POST', '/approvals/batch', { items: ids.map((id) => ({ id, action: 'approve' })) });
    return back(c, '/ui/approvals', res, `approved ${ids.length} entr${ids.length === 1 ? 'y' : 'ies'}`);
  });

  // ------------------------------------------------------------------ tests (lanes)
  app.get('/ui/tests', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    return page(c, 'Tests', v, html`<section id="lanes" data-live="/ui/live/lanes" aria-live="polite">${await lanesHtml(v)}</section>`);
  });
  app.get('/ui/live/lanes', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return c.text('', 401);
    return c.html((await lanesHtml(v)).value);
  });

  // ------------------------------------------------------------------ deployments
  app.get('/ui/deployments', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const r = await v.api('GET', '/deployments?limit=100');
    return page(c, 'Deployments', v, html`<table><thead><tr><th scope="col">Id</th><th scope="col">Errata</th><th scope="col">Status</th><th scope="col">Systems ok / failed / total</th><th scope="col">Window</th><th scope="col">Halt reason</th></tr></thead>
      <tbody>${((r.body?.items ?? []) as any[]).map((d) => html`<tr><td><a href="/ui/deployments/${d.id}">${d.id}</a></td><td>${d.errata_id}</td><td>${badge(d.status)}</td>
        <td>${d.systems_succeeded} / ${d.systems_failed} / ${d.total_systems}</td><td>${String(d.window_start ?? '').slice(0, 16).replace('T', ' ')}</td><td>${d.halt_reason ?? ''}</td></tr>`)}</tbody></table>`);
  });

  app.get('/ui/deployments/:id{[0-9]+}', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const r = await v.api('GET', `/deployments/${c.req.param('id')}`);
    if (r.status !== 200) return page(c, 'Deployment', v, html`<p class="flash error" role="alert">${r.body?.error?.message ?? 'not found'}</p>`, r.status);
    const d = r.body;
    const approver = roleAtLeast(v.role, 'approver');
    return page(c, `Deployment ${d.id}: ${d.errata_id}`, v, html`${flash(c)}
      <p>Status ${badge(d.status)} · ${d.systems_succeeded} ok, ${d.systems_failed} failed of ${d.total_systems}${d.halt_reason ? html` · <strong>halted: ${d.halt_reason}</strong>` : ''} · <a href="/ui/entries/${d.queue_id}">entry ${d.queue_id}</a></p>
      ${approver ? html`<form method="post" action="/ui/deployments/${d.id}/rollback" class="card" id="rollback">
        <input type="hidden" name="csrf" value="${v.csrf}">
        <fieldset><legend>Roll back selected systems</legend>
        <label><input type="radio" name="type" value="package" checked> package level (reinstall the versions from before the wave)</label>
        <label><input type="radio" name="type" value="system"> system level (snapper rollback to the pre-wave snapshot, then a reboot)</label>
        <label for="rb-reason">Reason</label><input id="rb-reason" name="reason" required maxlength="2000">
        <label><input type="checkbox" name="confirm" value="yes" required> I understand: the selected systems will be rolled back now</label>
        <button type="submit">Roll back selected</button></fieldset></form>` : ''}
      <table><thead><tr>${approver ? html`<th scope="col">Select</th>` : ''}<th scope="col">Wave</th><th scope="col">System</th><th scope="col">Status</th><th scope="col">Action</th><th scope="col">Message</th></tr></thead>
      <tbody>${((d.systems ?? []) as any[]).map((s) => html`<tr>${approver ? html`<td><input type="checkbox" form="rollback" name="systems" value="${s.system_id}" aria-label="select ${s.system_name}"${s.status === 'failed' ? raw(' checked') : ''}></td>` : ''}
        <td>${s.wave}</td><td>${s.system_name}</td><td>${badge(s.status)}</td><td>${s.action_id ?? ''}</td><td>${s.message ?? ''}</td></tr>`)}</tbody></table>
      <h2>Rollbacks</h2><ul>${((d.rollbacks ?? []) as any[]).map((x) => html`<li>${x.rollback_type} by ${x.initiated_by}: ${x.status} (${x.systems_succeeded} ok, ${x.systems_failed} failed) — ${x.reason ?? ''}</li>`)}</ul>`);
  });

  app.post('/ui/deployments/:id{[0-9]+}/rollback', async (c) => {
    const r = await form(c);
    if (r instanceof Response) return r;
    const id = c.req.param('id');
    const all = await c.req.parseBody({ all: true });
    const systems = (Array.isArray(all.systems) ? all.systems : all.systems ? [all.systems] : []).map((x) => Number(x)).filter((x) => Number.isInteger(x) && x > 0);
    if (r.f.confirm !== 'yes') return c.redirect(`/ui/deployments/${id}?error=${encodeURIComponent('confirm the rollback first')}`, 303);
    const res = await r.v.api('POST', `/deployments/${id}/rollback`, { type: r.f.type === 'system' ? 'system' : 'package', reason: r.f.reason ?? '', ...(systems.length > 0 ? { systems } : {}) });
    return back(c, `/ui/deployments/${id}`, res, `${r.f.type ?? 'package'} rollback of ${systems.length || 'all'} system(s) started`);
  });

  // ------------------------------------------------------------------ sync, inspector
  app.get('/ui/sync', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const r = await v.api('GET', '/sync/status');
    const last = r.body?.last_run;
    return page(c, 'Sync', v, html`${flash(c)}
      ${last ? html`<p>Last run ${last.id}: <strong>${last.status}</strong> at ${String(last.started_at ?? '').replace('T', ' ').slice(0, 19)}${last.error ? html` — ${last.error}` : ''}</p>
        <pre>${JSON.stringify(last.stats ?? {}, null, 2)}</pre>` : html`<p>No sync yet${r.status !== 200 ? html` (${r.body?.error?.message ?? ''})` : ''}.</p>`}
      ${roleAtLeast(v.role, 'operator') ? html`<form method="post" action="/ui/sync/trigger"><input type="hidden" name="csrf" value="${v.csrf}"><button type="submit">Sync now</button></form>` : ''}`);
  });
  app.post('/ui/sync/trigger', async (c) => {
    const r = await form(c);
    if (r instanceof Response) return r;
    return back(c, '/ui/sync', await r.v.api('POST', '/sync/trigger', {}), 'sync started');
  });

  app.get('/ui/inspector/:id{[0-9]+}', async (c) => {
    const v = await viewer(c);
    if (v instanceof Response) return v;
    const r = await v.api('GET', `/queue/${c.req.param('id')}/inspect`);
    if (r.status !== 200) return page(c, 'Inspector', v, html`<p class="flash error" role="alert">${r.body?.error?.message ?? 'not found'}</p>`, r.status);
    const i = r.body;
    return page(c, `Inspector: entry ${i.id}`, v, html`
      <p>Current state <strong id="current-state">${i.state}</strong> (revision ${i.revision}${i.live ? ', live' : ''}) · <a href="/ui/entries/${i.id}">entry</a></p>
      <figure>${raw(machineSvg(i.machine, i.status, i.path as string[]))}<figcaption>The patch machine; current state outlined, states visited in bold. Legend: text marks the state as well as colour.</figcaption></figure>
      <h2>Path so far</h2><p>${(i.path as string[]).join(' → ')}</p>
      <h2>Context (secrets redacted)</h2><pre>${JSON.stringify(i.context, null, 2)}</pre>`);
  });

  async function lanesHtml(v: Viewer): Promise<Html> {
    const r = await v.api('GET', '/lanes');
    const lanes = (r.body?.lanes ?? []) as any[];
    if (!r.body?.enabled) return html`<p>No test lanes: the test engine is not configured (UYUNI_URL and SALT_API_URL).</p>`;
    return html`${r.body.error ? html`<p class="flash error" role="alert">${r.body.error}</p>` : ''}
      <table><thead><tr><th scope="col">OS</th><th scope="col">Test system</th><th scope="col">Now</th><th scope="col">Tests done</th></tr></thead>
      <tbody>${lanes.map((l) => html`<tr><td>${l.os}</td><td>${l.system}</td><td>${l.paused ? html`<span class="badge bad">paused</span> ${l.paused}` : l.entryId ? html`<a href="/ui/entries/${l.entryId}">entry ${l.entryId}</a>` : 'idle'}</td><td>${l.completed}</td></tr>`)}</tbody></table>`;
  }
}

function decisionForms(v: Viewer, id: number, backTo: string): Html {
  const hidden = html`<input type="hidden" name="csrf" value="${v.csrf}"><input type="hidden" name="back" value="${backTo}">`;
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  return html`<div class="decide" role="group" aria-label="Decide entry ${id}">
    <form method="post" action="/ui/approvals/${id}/approve" class="inline">${hidden}<label for="ar-${id}" class="sr">Approval note</label><input id="ar-${id}" name="reason" placeholder="note (optional)" maxlength="2000"><button type="submit">Approve</button></form>
    <form method="post" action="/ui/approvals/${id}/reject" class="inline">${hidden}<label for="rr-${id}" class="sr">Reason for rejecting</label><input id="rr-${id}" name="reason" required placeholder="reason" maxlength="2000"><button type="submit">Reject</button></form>
    <form method="post" action="/ui/approvals/${id}/snooze" class="inline">${hidden}<label for="sr-${id}" class="sr">Reason for snoozing</label><input id="sr-${id}" name="reason" required placeholder="reason" maxlength="2000">
      <label for="su-${id}">until</label><input id="su-${id}" name="until" type="date" required min="${tomorrow}" value="${tomorrow}"><button type="submit">Snooze</button></form></div>`;
}

function countsHtml(counts: Record<string, number>): Html {
  return html`${Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => html`<a class="count" href="/ui?status=${s}">${badge(s)} ${n}</a> `)}`;
}

const GOOD = new Set(['completed', 'passed', 'pending_approval', 'approved', 'succeeded']);
const BAD = new Set(['failed', 'needs_attention', 'rolled_back', 'halted', 'rollback_failed', 'partial_failure', 'rejected']);
function badge(status: string): Html {
  return html`<span class="badge ${GOOD.has(status) ? 'good' : BAD.has(status) ? 'bad' : 'neutral'}">${status}</span>`;
}
const fmt = (x: unknown) => (x === null || x === undefined ? '—' : String(x));

/** Baseline vs post as two small bars (SVG, no script). */
function barChart(k: { baseline: number | null; post: number | null; limit: number; check: string }): Html {
  if (k.baseline === null || k.post === null || k.check === 'failed_services') return html``;
  const max = Math.max(1, k.baseline, k.post, k.baseline + k.limit);
  const w = (x: number) => Math.round((x / max) * 100);
  return raw(`<svg class="bars" width="110" height="26" role="img" aria-label="baseline ${k.baseline}, after ${k.post}, limit +${k.limit}"><rect x="0" y="2" height="9" width="${w(k.baseline)}" class="b0"/><rect x="0" y="14" height="9" width="${w(k.post)}" class="b1"/><line x1="${w(k.baseline + k.limit)}" x2="${w(k.baseline + k.limit)}" y1="0" y2="26" class="lim"/></svg>`);
}
