/** Pieces several dashboard pages share: status badges, table heads, the decision forms, a chart. */
import { html, raw, type Html } from './html.ts';
import type { Viewer } from './session.ts';

const GOOD = new Set(['completed', 'passed', 'pending_approval', 'approved', 'succeeded']);
const BAD = new Set([
  'failed',
  'needs_attention',
  'rolled_back',
  'halted',
  'rollback_failed',
  'partial_failure',
  'rejected',
]);

/**
 * A status as a badge: good, bad or neutral (the text says it too, not only the colour).
 * @example
 * html`<td>${badge(entry.status)}</td>`
 */
export function badge(status: string): Html {
  return html`<span class="badge ${GOOD.has(status) ? 'good' : BAD.has(status) ? 'bad' : 'neutral'}">${status}</span>`;
}

/**
 * A value for a table cell; a dash when there is none.
 * @example
 * fmt(null) // '—'
 */
export const fmt = (x: unknown) => (x === null || x === undefined ? '—' : String(x));

/**
 * An error message on a page (a screen reader announces it).
 * @example
 * return page(c, 'Inspector', v, alert(r.body?.error?.message ?? 'not found'), r.status);
 */
export function alert(message: unknown): Html {
  return html`<p class="flash error" role="alert">${message}</p>`;
}

/**
 * The session's CSRF token as a hidden form field.
 * @example
 * html`<form method="post" action="/ui/sync/trigger">${csrfField(v)}…</form>`
 */
export function csrfField(v: Viewer): Html {
  return html`<input type="hidden" name="csrf" value="${v.csrf}">`;
}

/**
 * A table head of column headers.
 * @example
 * html`<table>${tableHead(['Id', 'Errata'])}<tbody>…</tbody></table>`
 */
export function tableHead(columns: readonly string[]): Html {
  return html`<thead><tr>${columns.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>`;
}

const submit = (label: string) => html`<button type="submit">${label}</button>`;

/**
 * Approve (with an optional note), reject or snooze (until a date, tomorrow at the earliest) one entry.
 * @param backTo the page the redirect returns to
 * @example
 * html`${decisionForms(v, entry.id, '/ui/approvals')}`
 */
export function decisionForms(v: Viewer, id: number, backTo: string): Html {
  const hidden = html`${csrfField(v)}<input type="hidden" name="back" value="${backTo}">`;
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  const action = (a: string) => `/ui/approvals/${id}/${a}`;
  const label = (key: string, text: string) => html`<label for="${key}-${id}" class="sr">${text}</label>`;
  const reason = (key: string, attrs: string) =>
    html`<input id="${key}-${id}" name="reason"${raw(attrs)} maxlength="2000">`;
  const approve = html`${label('ar', 'Approval note')}${reason('ar', ' placeholder="note (optional)"')}`;
  const reject = html`${label('rr', 'Reason for rejecting')}${reason('rr', ' required placeholder="reason"')}`;
  const snooze = html`${label('sr', 'Reason for snoozing')}${reason('sr', ' required placeholder="reason"')}`;
  const until = html`<input id="su-${id}" name="until" type="date" required min="${tomorrow}" value="${tomorrow}">`;
  return html`<div class="decide" role="group" aria-label="Decide entry ${id}">
    <form method="post" action="${action('approve')}" class="inline">${hidden}${approve}${submit('Approve')}</form>
    <form method="post" action="${action('reject')}" class="inline">${hidden}${reject}${submit('Reject')}</form>
    <form method="post" action="${action('snooze')}" class="inline">${hidden}${snooze}
      <label for="su-${id}">until</label>${until}${submit('Snooze')}</form></div>`;
}

/**
 * Baseline vs post as two small bars (SVG, no script); nothing when a value is missing.
 * @example
 * html`<td>${barChart({ check: 'cpu_delta_percent', baseline: 10, post: 11, limit: 20 })}</td>`
 */
export function barChart(k: { baseline: number | null; post: number | null; limit: number; check: string }): Html {
  if (k.baseline === null || k.post === null || k.check === 'failed_services') return html``;
  const max = Math.max(1, k.baseline, k.post, k.baseline + k.limit);
  const w = (x: number) => Math.round((x / max) * 100);
  const limitX = w(k.baseline + k.limit);
  return raw(
    [
      '<svg class="bars" width="110" height="26" role="img" ',
      `aria-label="baseline ${k.baseline}, after ${k.post}, limit +${k.limit}">`,
      `<rect x="0" y="2" height="9" width="${w(k.baseline)}" class="b0"/>`,
      `<rect x="0" y="14" height="9" width="${w(k.post)}" class="b1"/>`,
      `<line x1="${limitX}" x2="${limitX}" y1="0" y2="26" class="lim"/></svg>`,
    ].join(''),
  );
}
