/** The approvals page: entries waiting for a decision, oldest first; decide one, or approve a selection. */
import type { Context, Hono } from 'hono';
import { roleAtLeast } from '../../../services/tokens.ts';
import { csrfField, decisionForms, tableHead } from '../components.ts';
import { html, raw, type Html } from '../html.ts';
import { back, flash, page } from '../layout.ts';
import { checkedIds, type Session, type Viewer } from '../session.ts';

const COLUMNS = ['Entry', 'Errata', 'Score', 'Hours waiting', 'Decision'];
const APPROVER_ONLY = raw('<span class="muted">approver role needed</span>');
const PAST_TENSE: Record<string, string> = { approve: 'approved', reject: 'rejected', snooze: 'snoozed' };

function pendingRow(v: Viewer, approver: boolean, e: any): Html {
  const select = approver
    ? html`<td><input type="checkbox" form="batch" name="ids" value="${e.id}" aria-label="select ${e.errata_id}"></td>`
    : '';
  const hours = e.hours_pending !== undefined && e.hours_pending !== null ? Number(e.hours_pending).toFixed(1) : '';
  const entry = html`<a href="/ui/entries/${e.id}">${e.id}</a>`;
  return html`<tr>
        ${select}
        <td>${entry}</td><td>${e.errata_id} (${e.target_os})</td><td>${e.success_score ?? ''}</td>
        <td>${hours}</td>
        <td>${approver ? decisionForms(v, e.id, '/ui/approvals') : APPROVER_ONLY}</td></tr>`;
}

async function showApprovals(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const r = await v.api('GET', '/approvals/pending');
  const items = (r.body?.items ?? []) as any[];
  const approver = roleAtLeast(v.role, 'approver');
  const batch = approver && items.length > 0;
  const batchForm = batch
    ? html`<form method="post" action="/ui/approvals/batch" id="batch">${csrfField(v)}</form>`
    : '';
  const batchButton = batch ? html`<p><button type="submit" form="batch">Approve selected</button></p>` : '';
  return page(
    c,
    'Approvals',
    v,
    html`${flash(c)}
      <p>${items.length} waiting, oldest first.</p>
      ${batchForm}
      <table>${tableHead(approver ? ['Select', ...COLUMNS] : COLUMNS)}
      <tbody>${items.map((e) => pendingRow(v, approver, e))}</tbody></table>
      ${batchButton}`,
  );
}

async function decideOne(c: Context, s: Session) {
  const r = await s.form(c);
  if (r instanceof Response) return r;
  const { v, f } = r;
  const id = c.req.param('id');
  const action = c.req.param('action') ?? '';
  // Back to a dashboard path only (no scheme, host or control characters in the redirect).
  const to = f.back && /^\/ui(\/[\w\-./?=&%]*)?$/.test(f.back) ? f.back : `/ui/entries/${id}`;
  const body: Record<string, unknown> = {};
  if (f.reason) body.reason = f.reason;
  if (action === 'snooze' && f.until) {
    const until = /^\d{4}-\d{2}-\d{2}$/.test(f.until) ? new Date(`${f.until}T00:00:00Z`) : null;
    if (until === null || Number.isNaN(until.getTime()))
      return back(c, to, { status: 400, body: { error: { message: 'until: expected a date (YYYY-MM-DD)' } } }, '');
    body.until = until.toISOString();
  }
  const res = await v.api('POST', `/approvals/${id}/${action}`, body);
  // Two distinct approvers (Critical, Very High risk): say that the entry still waits for another.
  const missing = action === 'approve' ? Number(res.body?.approvals_missing ?? 0) : 0;
  const more = missing > 0 ? `; it needs ${missing} more approval${missing === 1 ? '' : 's'} by another person` : '';
  // The approval covers these production groups and no other (a group added later voids it).
  const groups =
    action === 'approve' && Array.isArray(res.body?.target_groups) ? (res.body.target_groups as string[]) : [];
  const scope = groups.length > 0 ? ` for production group${groups.length === 1 ? '' : 's'} ${groups.join(', ')}` : '';
  return back(c, to, res, `${PAST_TENSE[action]} entry ${id}${scope}${more}`);
}

async function approveSelected(c: Context, s: Session) {
  const r = await s.form(c);
  if (r instanceof Response) return r;
  const ids = checkedIds((await c.req.parseBody({ all: true })).ids);
  if (ids.length === 0) {
    return c.redirect(`/ui/approvals?error=${encodeURIComponent('select at least one entry')}`, 303);
  }
  const res = await r.v.api('POST', '/approvals/batch', { items: ids.map((id) => ({ id, action: 'approve' })) });
  // A refused item (self_approval, already_approved, …) is said, not counted as approved.
  const refused = ((res.body?.results ?? []) as { id: number; ok: boolean; error?: { code: string } }[]).filter(
    (x) => !x.ok,
  );
  const done = ids.length - refused.length;
  const note =
    refused.length > 0 ? `; refused: ${refused.map((x) => `${x.id} (${x.error?.code ?? 'error'})`).join(', ')}` : '';
  return back(c, '/ui/approvals', res, `approved ${done} entr${done === 1 ? 'y' : 'ies'}${note}`);
}

/**
 * Mount `/ui/approvals` and its decision forms.
 * @example
 * approvalPages(app, session);
 */
export function approvalPages(app: Hono<any>, s: Session): void {
  app.get('/ui/approvals', (c) => showApprovals(c, s));
  app.post('/ui/approvals/:id{[0-9]+}/:action{approve|reject|snooze}', (c) => decideOne(c, s));
  app.post('/ui/approvals/batch', (c) => approveSelected(c, s));
}
