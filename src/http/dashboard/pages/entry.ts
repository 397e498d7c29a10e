/**
 * One entry's page: status, errata, success score and its breakdown, the decision forms (for an
 * approver while it waits), the latest test's evidence and phases, and the journal.
 */
import type { Context, Hono } from 'hono';
import { roleAtLeast } from '../../../services/tokens.ts';
import { alert, badge, barChart, decisionForms, fmt, tableHead } from '../components.ts';
import { judgementEvidence } from '../evidenceChart.ts';
import { html, type Html } from '../html.ts';
import { flash, page } from '../layout.ts';
import type { Session } from '../session.ts';

const CHECK_COLUMNS = ['Check', 'Baseline', 'After', 'Delta', 'Limit', 'Result', 'Chart'];
const HISTORY_COLUMNS = ['#', 'When', 'Event', 'From → to', 'Who'];

const cells = (values: unknown[]) => values.map((x) => html`<td>${x}</td>`);

function errataSection(errata: any): Html {
  const cvss = errata?.cvss_score ? html` (CVSS ${errata.cvss_score})` : '';
  const cves = (errata?.cves ?? []).join(', ') || 'none';
  const packages = ((errata?.packages ?? []) as any[]).map((p) => p.name).join(', ') || 'not fetched';
  return html`<section aria-labelledby="h-errata"><h2 id="h-errata">Errata</h2>
        <p>${errata?.synopsis ?? ''} · ${errata?.advisory_type ?? ''} · severity ${errata?.severity ?? '?'}${cvss}</p>
        <p>CVEs: ${cves} · packages: ${packages}</p></section>`;
}

function scoreSection(entry: any, risk: any): Html {
  const factors = risk?.score_breakdown
    ? Object.entries(risk.score_breakdown).filter(([k]) => !['score', 'risk_level'].includes(k))
    : [];
  const rows = factors.map(([k, x]) => html`<tr><th scope="row">${k}</th><td>${String(x)}</td></tr>`);
  const breakdown = risk?.score_breakdown
    ? html`<table class="compact"><tbody>${rows}</tbody></table>`
    : html`<p>No breakdown yet.</p>`;
  const heading = html`<h2 id="h-score">Success score ${entry.success_score} (${entry.risk_level})</h2>`;
  return html`<section aria-labelledby="h-score">${heading}
        ${breakdown}</section>`;
}

function checkRow(k: any): Html {
  const verdict = k.ok === true ? 'pass' : k.ok === false ? 'FAIL' : 'no data';
  return html`<tr>${cells([k.check, fmt(k.baseline), fmt(k.post), fmt(k.delta), k.limit, verdict, barChart(k)])}</tr>`;
}

function serviceState([name, active]: [string, unknown]): Html {
  const cls = active === true ? 'up' : active === false ? 'down' : 'unknown';
  const text = active === true ? 'active' : active === false ? 'NOT active' : 'unknown';
  return html`<span class="svc ${cls}">${name}: ${text}</span> `;
}

function phaseItem(p: any): Html {
  const ended = p.ended_at ? html`–${String(p.ended_at).slice(11, 19)}` : '';
  const when = html`<span class="muted">${String(p.started_at ?? '').slice(11, 19)}${ended}</span>`;
  return html`<li><strong>${p.phase}</strong> ${p.outcome ?? ''} ${when}${p.error ? html` — ${p.error}` : ''}</li>`;
}

function testEvidence(test: any, phases: any[]): Html {
  if (!test) return html`<p>Not tested yet.</p>`;
  const failure = test.failure_reason ? html` — ${test.failure_reason}` : '';
  const reboot = test.required_reboot ? ' · rebooted' : '';
  const rollback = test.rollback_type ? html` · rollback ${test.rollback_type} ${test.rollback_status ?? ''}` : '';
  const outcome = html`<strong>${test.result}</strong>${failure}${reboot}${rollback}`;
  // A test judged on windows stores its judgement; an older one its instant checks.
  const judged = test.metrics_delta && !Array.isArray(test.metrics_delta);
  const checks = judged ? [] : ((test.metrics_delta ?? []) as any[]).map(checkRow);
  const services = Object.entries(test.services_post_patch ?? {}).map(serviceState);
  return html`<p>Test ${test.id} on ${test.test_system_name ?? '?'}: ${outcome}</p>
          ${
            judged
              ? judgementEvidence(test.metrics_delta)
              : html`<table>${tableHead(CHECK_COLUMNS)}
          <tbody>${checks}</tbody></table>`
          }
          <p>Services after the patch: ${services}</p>
          <h3>Phases</h3><ol class="timeline">${phases.map(phaseItem)}</ol>`;
}

function transitionRow(t: any): Html {
  const when = String(t.at).replace('T', ' ').slice(0, 19);
  const event = html`${t.event_type}${t.payload?.reason ? html` — ${t.payload.reason}` : ''}`;
  return html`<tr>${cells([t.seq, when, event, html`${t.from_state ?? '∅'} → ${t.to_state}`, t.actor])}</tr>`;
}

async function showEntry(c: Context, s: Session) {
  const v = await s.viewer(c);
  if (v instanceof Response) return v;
  const id = c.req.param('id');
  const [r, hist] = await Promise.all([v.api('GET', `/queue/${id}`), v.api('GET', `/queue/${id}/history`)]);
  if (r.status !== 200) return page(c, `Entry ${id}`, v, alert(r.body?.error?.message ?? 'not found'), r.status);
  const { entry, errata, risk_profile: risk, tests, allowed_events: allowed } = r.body;
  const test = (tests as any[]).at(-1);
  const phases = test ? ((await v.api('GET', `/tests/${test.id}/phases`)).body?.phases ?? []) : [];
  const waiting = entry.status === 'pending_approval' || entry.status === 'snoozed';
  const canDecide = roleAtLeast(v.role, 'approver') && waiting;
  // A deployment waiting for its production group (one deployment per group) says for what.
  const waitingFor = r.body.production?.waiting_for as string | null | undefined;
  const reason = entry.status_reason
    ? html`— ${entry.status_reason}`
    : waitingFor && entry.status === 'prod_pending'
      ? html`— ${waitingFor}`
      : '';
  const transitions = ((hist.body?.transitions ?? []) as any[]).map(transitionRow);
  return page(
    c,
    `${entry.errata_id} (${entry.target_os})`,
    v,
    html`${flash(c)}
      <p>Status ${badge(entry.status)} ${reason} · <a href="/ui/inspector/${entry.id}">Inspector</a></p>
      ${errataSection(errata)}
      ${scoreSection(entry, risk)}
      ${canDecide ? decisionForms(v, entry.id, `/ui/entries/${entry.id}`) : ''}
      <section aria-labelledby="h-evidence"><h2 id="h-evidence">Evidence</h2>
        ${testEvidence(test, phases as any[])}
      </section>
      <section aria-labelledby="h-history"><h2 id="h-history">History</h2>
        <table>${tableHead(HISTORY_COLUMNS)}
        <tbody>${transitions}</tbody></table>
        <p class="muted">Allowed now: ${(allowed ?? []).join(', ') || 'nothing'}</p></section>`,
  );
}

/**
 * Mount `/ui/entries/{id}`.
 * @example
 * entryPages(app, session);
 */
export function entryPages(app: Hono<any>, s: Session): void {
  app.get('/ui/entries/:id{[0-9]+}', (c) => showEntry(c, s));
}
