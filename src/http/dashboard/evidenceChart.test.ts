import { describe, expect, it } from 'vitest';
import { judgementText } from '../../services/alerts.ts';
import { defaultCanaryMetrics } from '../../services/judge/canary.ts';
import { judgeTest } from '../../services/judge/testJudge.ts';
import { evidenceChart, judgementEvidence } from './evidenceChart.ts';

const seq = (from: number, n = 15, step = 0.3) => Array.from({ length: n }, (_, i) => from + ((i * 7) % 5) * step);
const metrics = defaultCanaryMetrics();
function judgement(memPost: number[]) {
  const windows = Object.fromEntries(
    metrics.map((m) => [
      m.name,
      {
        baseline: seq(m.name === 'memory_used_percent' ? 40 : 1),
        post: m.name === 'memory_used_percent' ? memPost : seq(1),
      },
    ]),
  );
  return judgeTest({
    services: { baseline: { 'nginx.service': true }, post: { 'nginx.service': true } },
    maxFailedServices: 0,
    canary: { metrics, windows, policy: {} },
    reboot: null,
  });
}

describe('evidence chart and text', () => {
  it('draws both windows, the baseline median and the allowed limit as plain SVG', () => {
    const j = judgement(Array.from({ length: 15 }, (_, i) => 60 + i));
    const mem = j.metrics.find((m) => m.name === 'memory_used_percent')!;
    const svg = evidenceChart(mem);
    expect(svg).toMatch(
      /^<svg class="evidence" [^>]*role="img" aria-label="memory_used_percent: high; baseline 15 samples, median [\d.]+; after the patch 15 samples, median 67; allowed limit [\d.]+">/,
    );
    expect(svg.match(/<circle /g)).toHaveLength(30);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('stroke="#b42318"'); // the limit, and the post series in the "high" colour
    expect(svg).not.toMatch(/<script|style=|href/);
    expect(svg.endsWith('</svg>')).toBe(true);
  });

  it('says "no data" for an empty window and escapes names', () => {
    const svg = evidenceChart({
      name: '<x>',
      classification: 'no_data',
      direction: 'increase_bad',
      allowed: null,
      samples: { baseline: [1, 2], post: [] },
      baseline: { median: 1.5 },
      post: { median: null },
    });
    expect(svg).toContain('no data');
    expect(svg).toContain('&lt;x&gt;');
    expect(svg).not.toContain('<x>');
    expect(
      evidenceChart({
        name: 'm',
        classification: 'no_data',
        direction: 'both',
        allowed: null,
        samples: { baseline: [], post: [] },
        baseline: { median: null },
        post: { median: null },
      }),
    ).toContain('no data');
  });

  it('the entry section shows the verdict, reasons and one row with a chart per metric', () => {
    const html = judgementEvidence(judgement(Array.from({ length: 15 }, (_, i) => 60 + i))).toString();
    expect(html).toContain('data-verdict="fail"');
    expect(html).toContain('Verdict: <strong>FAIL</strong>');
    expect(html.match(/<tr data-metric=/g)).toHaveLength(metrics.length);
    expect(html.match(/<svg class="evidence"/g)).toHaveLength(metrics.length);
    expect(html).toMatch(/critical memory_used_percent: rose/);
  });

  it('the approval text lists the numbers per metric (no SVG)', () => {
    const text = judgementText(JSON.parse(JSON.stringify(judgement(seq(40.1)))))!;
    expect(text.split('\n')[0]).toBe('Verdict: PASS, score 100 (pass >= 95, marginal >= 75)');
    expect(text).toMatch(
      /- memory_used_percent: pass \(critical\) — baseline n=15 median [\d.]+, after n=15 median [\d.]+; shift [+\d.-]+ \(95 % interval .+\), allowed \+15; U = [\d.]+, p = [\d.]+/,
    );
    expect(text).not.toContain('<svg');
    expect(judgementText([{ check: 'cpu_delta_percent' }])).toBeNull();
    expect(judgementText(null)).toBeNull();
  });
});
