/**
 * The deployments pages: the list, one deployment with its systems and rollbacks, and (for an
 * approver) the form that rolls selected systems back — failed systems are preselected.
 */
import type { Context, Hono } from 'hono';
import { roleAtLeast } from '../../../services/tokens.ts';
import { alert, badge, csrfField, tableHead } from '../components.ts';
import { html, raw, type Html } from '../html.ts';
import { back, flash, page } from '../layout.ts';
import { checkedIds, type Session, type Viewer } from '../session.ts';

const LIST_COLUMNS = ['Id', 'Errata', 'Status', 'Systems ok / failed / total', 'Window', 'Halt reason'];
const SYSTEM_COLUMNS = ['Wave', 'System', 'Status', 'Action', 'Message'];

/** The rollback form's fields (static markup, one per line). */
const ROLLBACK_FIELDS = raw(
  [
    '<fieldset><legend>Roll back selected systems</legend>',
    '<label><input type="radio" name="type" value="package" checked> ' +
      'package level (reinstall the versions from before the wave)</label>',
    '<label><input type="radio" name="type" value="system"> ' +
      'system level (snapper rollback to the pre-wave snapshot, then a reboot)</label>',
    '<label for="rb-reason">Reason</label><input id="rb-reason" name="reason" required maxlength="2000">',
    '<label><input type="checkbox" name="confirm" value="yes" required> ' +
      'I understand: the selected systems will be rolled back now</label>',
    '<button type="submit">Roll back selected</button></fieldset></form>',
  ].join('\n        '),
);

function deploymentRow(d: any): Html {
  const id = html`<a href="/ui/deployments/${d.id}">${d.id}</a>`;
  const systems = html`${d.systems_succeeded} / ${d.systems_failed} / ${d.total_systems}`;
  const window = String(d.window_start ?? '')
    .slice(0, 16)
    .replace('T', ' ');
  return html`<tr><td>${id}</td><td>${d.errata_id}</td><td>${badge(d.status)}</td>
        <td>${systems}</td><td>${window}</td><td>${d.halt_reason ?? ''}</td></tr>`;
}

async function listDeployments(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const r = await v.api('GET', '/deployments?limit=100');
  return page(
    c,
    'Deployments',
    v,
    html`<table>${tableHead(LIST_COLUMNS)}
      <tbody>${((r.body?.items ?? []) as any[]).map(deploymentRow)}</tbody></table>`,
  );
}

function rollbackForm(v: Viewer, d: any): Html {
  return html`<form method="post" action="/ui/deployments/${d.id}/rollback" class="card" id="rollback">
        ${csrfField(v)}
        ${ROLLBACK_FIELDS}`;
}

function systemRow(approver: boolean, s: any): Html {
  const checked = s.status === 'failed' ? raw(' checked') : '';
  const label = html`aria-label="select ${s.system_name}"`;
  const box = html`<input type="checkbox" form="rollback" name="systems" value="${s.system_id}" ${label}${checked}>`;
  const select = approver ? html`<td>${box}</td>` : '';
  const values = [s.wave, s.system_name, badge(s.status), s.action_id ?? '', s.message ?? ''];
  const cells = values.map((x) => html`<td>${x}</td>`);
  return html`<tr>${select}
        ${cells}</tr>`;
}

function rollbackItem(x: any): Html {
  const counts = html`(${x.systems_succeeded} ok, ${x.systems_failed} failed)`;
  return html`<li>${x.rollback_type} by ${x.initiated_by}: ${x.status} ${counts} — ${x.reason ?? ''}</li>`;
}

async function showDeployment(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const r = await v.api('GET', `/deployments/${c.req.param('id')}`);
  if (r.status !== 200) return page(c, 'Deployment', v, alert(r.body?.error?.message ?? 'not found'), r.status);
  const d = r.body;
  const approver = roleAtLeast(v.role, 'approver');
  const counts = html`${d.systems_succeeded} ok, ${d.systems_failed} failed of ${d.total_systems}`;
  const halted = d.halt_reason ? html` · <strong>halted: ${d.halt_reason}</strong>` : '';
  const entry = html`<a href="/ui/entries/${d.queue_id}">entry ${d.queue_id}</a>`;
  return page(
    c,
    `Deployment ${d.id}: ${d.errata_id}`,
    v,
    html`${flash(c)}
      <p>Status ${badge(d.status)} · ${counts}${halted} · ${entry}</p>
      ${approver ? rollbackForm(v, d) : ''}
      <table>${tableHead(approver ? ['Select', ...SYSTEM_COLUMNS] : SYSTEM_COLUMNS)}
      <tbody>${((d.systems ?? []) as any[]).map((x) => systemRow(approver, x))}</tbody></table>
      <h2>Rollbacks</h2><ul>${((d.rollbacks ?? []) as any[]).map(rollbackItem)}</ul>`,
  );
}

async function rollBackSystems(c: Context, s: Session) {
  const r = await s.form(c);
  if (r instanceof Response) return r;
  const id = c.req.param('id');
  const all = await c.req.parseBody({ all: true });
  const systems = checkedIds(all.systems);
  if (r.f.confirm !== 'yes') {
    return c.redirect(`/ui/deployments/${id}?error=${encodeURIComponent('confirm the rollback first')}`, 303);
  }
  const type = r.f.type === 'system' ? 'system' : 'package';
  const body = { type, reason: r.f.reason ?? '', ...(systems.length > 0 ? { systems } : {}) };
  const res = await r.v.api('POST', `/deployments/${id}/rollback`, body);
  const started = `${r.f.type ?? 'package'} rollback of ${systems.length || 'all'} system(s) started`;
  return back(c, `/ui/deployments/${id}`, res, started);
}

/**
 * Mount `/ui/deployments`, one deployment's page and its rollback form.
 * @example
 * deploymentPages(app, session);
 */
export function deploymentPages(app: Hono<any>, s: Session): void {
  app.get('/ui/deployments', (c) => listDeployments(c, s));
  app.get('/ui/deployments/:id{[0-9]+}', (c) => showDeployment(c, s));
  app.post('/ui/deployments/:id{[0-9]+}/rollback', (c) => rollBackSystems(c, s));
}
