/**
 * The window judge's evidence on the entry page (issue 13), drawn on the server as SVG — no script,
 * no external resource, colours as presentation attributes (the CSP allows no inline style): per
 * metric, the baseline samples left and the post-window samples right of the patch line, on one
 * scale, with the baseline median (dashed, across), the allowed effect's limit (red), the post
 * median, and the classification; and the table of the numbers behind it (sample counts and
 * medians, Hodges–Lehmann shift and its interval, the allowed effect, Mann-Whitney U and p, why).
 *
 * It reads the judgement validation stores in `patch_tests.metrics_delta` (`TestJudgement` of
 * src/services/judge/testJudge.ts); an older test's array of instant checks is drawn by the page.
 */
import { escape, html, raw, type Html } from './html.ts';

/** What the chart needs of one judged metric (a `JudgedMetric`). */
export interface ChartMetric {
  name: string;
  classification: string;
  direction: string;
  allowed: number | null;
  unit?: string | null;
  samples: { baseline: number[]; post: number[] };
  baseline: { median: number | null };
  post: { median: number | null };
}

const W = 240;
const H = 64;
const PAD = 4;
const MID = W / 2;
const COLOUR: Record<string, string> = { pass: '#1a7f37', high: '#b42318', low: '#b42318', no_data: '#5b6470' };

/** A number for a label or a table: short, never `NaN`. */
export function num(x: unknown): string {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 1 ? x.toFixed(2).replace(/\.?0+$/, '') : Number(x.toPrecision(2)).toString();
}

const signed = (x: unknown) => (typeof x === 'number' && x > 0 ? `+${num(x)}` : num(x));

/** The limits the allowed effect draws around the baseline median. */
function limits(m: ChartMetric): number[] {
  if (m.allowed === null || m.baseline.median === null) return [];
  const up = m.baseline.median + m.allowed;
  const down = m.baseline.median - m.allowed;
  return m.direction === 'increase_bad' ? [up] : m.direction === 'decrease_bad' ? [down] : [up, down];
}

/**
 * One metric's two windows as a small SVG (a string of trusted markup: every text is escaped).
 * @example
 * evidenceChart({ name: 'memory_used_percent', classification: 'high', direction: 'increase_bad', allowed: 15,
 *   samples: { baseline: [40, 41], post: [60, 62] }, baseline: { median: 40.5 }, post: { median: 61 } })
 */
export function evidenceChart(m: ChartMetric): string {
  const base = m.samples.baseline.filter(Number.isFinite);
  const post = m.samples.post.filter(Number.isFinite);
  const colour = COLOUR[m.classification] ?? '#5b6470';
  const lims = limits(m);
  const all = [...base, ...post, ...lims];
  const label =
    `${m.name}: ${m.classification}; baseline ${base.length} samples, median ${num(m.baseline.median)}; ` +
    `after the patch ${post.length} samples, median ${num(m.post.median)}${lims.length ? `; allowed limit ${lims.map(num).join(' / ')}` : ''}`;
  const parts: string[] = [
    `<svg class="evidence" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escape(label)}">`,
    `<title>${escape(label)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#fff" stroke="#d5dae0"/>`,
    `<line x1="${MID}" x2="${MID}" y1="0" y2="${H}" stroke="#9aa4b2" stroke-dasharray="2 2"/>`,
    `<text x="${MID + 3}" y="10" font-size="9" fill="#5b6470" font-family="system-ui, sans-serif">patch</text>`,
  ];
  if (all.length === 0) {
    parts.push(
      `<text x="${W / 2}" y="${H / 2 + 4}" text-anchor="middle" font-size="11" fill="#5b6470" font-family="system-ui, sans-serif">no data</text></svg>`,
    );
    return parts.join('');
  }
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi - lo < 1e-9) {
    lo -= 1;
    hi += 1;
  }
  const y = (v: number) => (PAD + (H - 2 * PAD) * (1 - (v - lo) / (hi - lo))).toFixed(1);
  const xs = (n: number, from: number, to: number) => (i: number) =>
    (n <= 1 ? (from + to) / 2 : from + ((to - from) * i) / (n - 1)).toFixed(1);
  for (const l of lims)
    parts.push(`<line x1="0" x2="${W}" y1="${y(l)}" y2="${y(l)}" stroke="#b42318" stroke-width="1"/>`);
  if (m.baseline.median !== null)
    parts.push(
      `<line x1="0" x2="${W}" y1="${y(m.baseline.median)}" y2="${y(m.baseline.median)}" stroke="#5b6470" stroke-dasharray="4 3"/>`,
    );
  if (m.post.median !== null && post.length > 0)
    parts.push(
      `<line x1="${MID}" x2="${W}" y1="${y(m.post.median)}" y2="${y(m.post.median)}" stroke="${colour}" stroke-width="1.5"/>`,
    );
  const series = (values: number[], from: number, to: number, stroke: string) => {
    if (values.length === 0) {
      parts.push(
        `<text x="${(from + to) / 2}" y="${H / 2 + 4}" text-anchor="middle" font-size="10" fill="#5b6470" font-family="system-ui, sans-serif">no data</text>`,
      );
      return;
    }
    const x = xs(values.length, from, to);
    parts.push(
      `<polyline fill="none" stroke="${stroke}" stroke-width="1" points="${values.map((v, i) => `${x(i)},${y(v)}`).join(' ')}"/>`,
    );
    for (const [i, v] of values.entries()) parts.push(`<circle cx="${x(i)}" cy="${y(v)}" r="1.6" fill="${stroke}"/>`);
  };
  series(base, PAD, MID - PAD, '#9aa4b2');
  series(post, MID + PAD, W - PAD, colour);
  parts.push('</svg>');
  return parts.join('');
}

const COLUMNS = ['Metric', 'Result', 'Baseline', 'After', 'Shift (interval)', 'Allowed', 'U', 'p', 'Why', 'Chart'];
const VERDICT_TEXT: Record<string, string> = {
  pass: 'pass',
  marginal: 'MARGINAL — a human decides',
  fail: 'FAIL',
  inconclusive: 'INCONCLUSIVE — not enough evidence',
};

function metricRow(m: any): Html {
  const shift = m.shift ? `${signed(m.shift.estimate)} (${signed(m.shift.low)} … ${signed(m.shift.high)})` : '—';
  const allowed =
    m.allowed === null || m.allowed === undefined
      ? '—'
      : `${m.direction === 'decrease_bad' ? '−' : m.direction === 'both' ? '±' : '+'}${num(m.allowed)}`;
  const result = `${m.classification}${m.critical ? ' (critical)' : ''}${m.optional ? ' (optional)' : ''}`;
  const cells = [
    m.name,
    result,
    `n=${m.baseline?.n ?? 0}, median ${num(m.baseline?.median)}`,
    `n=${m.post?.n ?? 0}, median ${num(m.post?.median)}`,
    shift,
    allowed,
    m.test ? num(m.test.u) : '—',
    m.test ? num(m.test.pValue) : '—',
    m.why,
  ].map((x) => html`<td>${x}</td>`);
  return html`<tr data-metric="${m.name}">${cells}<td>${raw(evidenceChart(m))}</td></tr>`;
}

function checkItem(c: any): Html {
  if (c.check === 'reboot') return html`<li>reboot: ${c.detail} — ${c.ok ? 'ok' : 'FAIL'}</li>`;
  const result = c.ok === true ? 'ok' : c.ok === false ? 'FAIL' : 'no data';
  return html`<li>${c.check}: ${c.post ?? '—'} (allowed ${c.limit})${c.detail ? html` ${c.detail}` : ''} — ${result}</li>`;
}

/**
 * A judgement (`patch_tests.metrics_delta` of a test judged on windows) as the page shows it: the
 * verdict and score, the reasons, the live checks, and one row per metric with its chart.
 * @example html`${judgementEvidence(test.metrics_delta)}`
 */
export function judgementEvidence(j: any): Html {
  const policy = j.policy
    ? html` (pass ≥ ${j.policy.passScore}, marginal ≥ ${j.policy.marginalScore}, ${Math.round(j.policy.confidence * 100)} % intervals)`
    : '';
  const score = j.score === null || j.score === undefined ? '' : html` · score ${num(j.score)}${policy}`;
  const judge = j.judge === 'salt_only' ? ' · Salt service checks only' : ' · window judge';
  const reasons = ((j.reasons ?? []) as string[]).map((r) => html`<li>${r}</li>`);
  const notes = ((j.notes ?? []) as string[]).map((n) => html`<li class="muted">${n}</li>`);
  const metrics = ((j.metrics ?? []) as any[]).map(metricRow);
  const table = metrics.length
    ? html`<table class="judgement">${html`<thead><tr>${COLUMNS.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>`}<tbody>${metrics}</tbody></table>`
    : '';
  return html`<p data-verdict="${j.verdict}">Verdict: <strong>${VERDICT_TEXT[j.verdict] ?? j.verdict}</strong>${score}${judge}</p>
          ${reasons.length ? html`<ul class="reasons">${reasons}</ul>` : ''}
          <ul>${((j.checks ?? []) as any[]).map(checkItem)}${notes}</ul>
          ${table}`;
}
