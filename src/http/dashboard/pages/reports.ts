/** The reports page: compliance (Security Advisories needed, deployed, overdue) and the pipeline summary. */
import type { Context, Hono } from 'hono';
import { tableHead } from '../components.ts';
import { html, raw, type Html } from '../html.ts';
import { page } from '../layout.ts';
import type { Session } from '../session.ts';

const SHOW = raw('<button type="submit">Show</button>');
const COMPLIANCE_COLUMNS = ['OS', 'Severity', 'Needed', 'Deployed', 'In progress', 'Overdue'];

function kvTable(title: string, o: Record<string, number> | undefined): Html {
  const rows = o ? Object.entries(o).map(([k, n]) => html`<tr><th scope="row">${k}</th><td>${n}</td></tr>`) : [];
  const table =
    o && Object.keys(o).length > 0
      ? html`<table class="compact"><tbody>${rows}</tbody></table>`
      : html`<p class="muted">none</p>`;
  return html`<h3>${title}</h3>${table}`;
}

function periodForm(days: number): Html {
  const label = html`<label for="f-days">Period (days)</label>`;
  const input = html`<input id="f-days" name="days" type="number" min="1" max="3650" value="${days}">`;
  const field = html`<span class="field">${label}${input}</span>`;
  return html`<form method="get" action="/ui/reports" class="filters">${field}${SHOW}</form>`;
}

function complianceRow(r: any): Html {
  const cells = [r.target_os, r.severity, r.needed, r.deployed, r.in_progress, r.overdue];
  return html`<tr>${cells.map((x) => html`<td>${x}</td>`)}</tr>`;
}

async function showReports(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const days = Math.max(1, Math.min(3650, Number(c.req.query('days')) || 30));
  const [sum, comp] = await Promise.all([
    v.api('GET', `/reports/summary?days=${days}`),
    v.api('GET', `/reports/compliance?days=${days}`),
  ]);
  const sm = sum.body ?? {};
  const t = comp.body?.total ?? {};
  const percent = t.deployed_percent ?? '—';
  const deployed = html`${t.deployed ?? 0} of ${t.needed ?? 0} Security Advisories deployed (${percent} %)`;
  const overdue = html`<strong>${t.overdue ?? 0} overdue</strong> (known for more than ${days} days, not deployed)`;
  const waiting = sm.pending_approvals;
  const oldest = waiting?.oldest_hours ? html`, the oldest for ${waiting.oldest_hours} h` : '';
  const tables = [
    kvTable('Queue by status', sm.queue),
    kvTable('Tests', sm.tests),
    kvTable('Deployments', sm.deployments),
    kvTable('Rollbacks', sm.rollbacks),
    kvTable('Notifications', sm.notifications),
  ];
  return page(
    c,
    'Reports',
    v,
    html`
      ${periodForm(days)}
      <section aria-labelledby="h-compliance"><h2 id="h-compliance">Compliance</h2>
        <p>${deployed}, ${overdue}.</p>
        <table>${tableHead(COMPLIANCE_COLUMNS)}
        <tbody>${((comp.body?.rows ?? []) as any[]).map(complianceRow)}</tbody></table></section>
      <section aria-labelledby="h-summary"><h2 id="h-summary">Summary (last ${days} days)</h2>
        <p>${waiting?.n ?? 0} waiting for approval${oldest}.</p>
        <div class="grid">${tables}</div></section>`,
  );
}

/**
 * Mount `/ui/reports`.
 * @example
 * reportPages(app, session);
 */
export function reportPages(app: Hono<any>, s: Session): void {
  app.get('/ui/reports', (c) => showReports(c, s));
}
