import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canaryMetricOf, canaryMetricsSchema, canaryPolicySchema, DEFAULT_CANARY_METRICS } from '../settings.ts';
import { defaultCanaryMetrics, type Windows } from './canary.ts';
import { judgeTest, machineVerdict, type TestJudgeInput } from './testJudge.ts';

const metrics = defaultCanaryMetrics();
const flat = (v: number, n = 15, jitter = 0.5) =>
  Array.from({ length: n }, (_, i) => v + ((i * 7) % 5) * jitter - jitter);
/** A host that did not change: every metric the same before and after. */
function unchanged(): Record<string, Windows> {
  return {
    cpu_busy_percent: { baseline: flat(20, 15, 2), post: flat(20.5, 15, 2) },
    memory_used_percent: { baseline: flat(40), post: flat(40.2) },
    failed_units: { baseline: flat(0, 15, 0), post: flat(0, 15, 0) },
    running_services: { baseline: flat(3, 15, 0), post: flat(3, 15, 0) },
    reboot_required: { baseline: flat(0, 15, 0), post: flat(0, 15, 0) },
    load1_per_cpu: { baseline: flat(0.2, 15, 0.02), post: flat(0.2, 15, 0.02) },
    network_errors_per_second: { baseline: flat(0, 15, 0), post: flat(0, 15, 0) },
  };
}
const up = { 'ssh.service': true, 'nginx.service': true };
const input = (over: Partial<TestJudgeInput> = {}): TestJudgeInput => ({
  services: { baseline: up, post: up },
  maxFailedServices: 0,
  canary: { metrics, windows: unchanged(), policy: {} },
  reboot: { required: false, rebooted: false },
  ...over,
});

describe('judgeTest: the window judge with the live service and reboot checks', () => {
  it('passes an unchanged host, keeping every metric with its samples, U, p, shift and why', () => {
    const j = judgeTest(input());
    expect(j).toMatchObject({ judge: 'canary', verdict: 'pass', score: 100, reasons: [], failedServices: [] });
    expect(machineVerdict(j)).toEqual({ verdict: 'pass', reason: null, marginal: false });
    const mem = j.metrics.find((m) => m.name === 'memory_used_percent')!;
    expect(mem.samples.baseline).toHaveLength(15);
    expect(mem.test).toMatchObject({ method: 'asymptotic' });
    expect(mem.shift!.low).toBeLessThanOrEqual(mem.shift!.estimate);
    expect(mem.why).toMatch(/memory_used_percent/);
    expect(mem.query).toContain('$INSTANCE');
    expect(j.checks.map((c) => c.check)).toEqual(['failed_services', 'reboot']);
  });

  it('a failed critical service fails the test alone, whatever the metrics say', () => {
    const j = judgeTest(input({ services: { baseline: up, post: { ...up, 'nginx.service': false } } }));
    expect(j.verdict).toBe('fail');
    expect(j.failedServices).toEqual(['nginx.service']);
    expect(machineVerdict(j).reason).toContain('nginx.service');
  });

  it('a leak beyond the allowed memory effect fails (critical metric)', () => {
    const w = unchanged();
    w.memory_used_percent = { baseline: flat(40), post: Array.from({ length: 15 }, (_, i) => 60 + i * 2) };
    const j = judgeTest(input({ canary: { metrics, windows: w, policy: {} } }));
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(/critical memory_used_percent: rose/);
  });

  it('a metric that disappears after the patch is inconclusive, never a pass', () => {
    const w = unchanged();
    w.memory_used_percent = { baseline: flat(40), post: [] };
    const j = judgeTest(input({ canary: { metrics, windows: w, policy: {} } }));
    expect(j.verdict).toBe('inconclusive');
    expect(machineVerdict(j)).toMatchObject({ verdict: 'inconclusive' });
    expect(j.reasons[0]).toMatch(/vanished/);
  });

  it('marginal is a pass for the machine that carries "marginal" and the reasons', () => {
    const w = unchanged();
    // running_services (weight 2 of 15, not critical) lost one service: 13/15 ≈ 86.7 → marginal.
    w.running_services = { baseline: flat(3, 15, 0), post: flat(2, 15, 0) };
    const j = judgeTest(input({ canary: { metrics, windows: w, policy: {} } }));
    expect(j.verdict).toBe('marginal');
    const v = machineVerdict(j);
    expect(v).toMatchObject({ verdict: 'pass', marginal: true });
    expect(v.reason).toMatch(/^marginal: score 86\.7 is below the pass score 95; running_services: fell/);
  });

  it('services that could not be checked are inconclusive even when the metrics pass', () => {
    const j = judgeTest(input({ services: { baseline: { 'nginx.service': null }, post: { 'nginx.service': null } } }));
    expect(j.verdict).toBe('inconclusive');
  });

  it('a required reboot that did not happen fails', () => {
    expect(judgeTest(input({ reboot: { required: true, rebooted: false } })).verdict).toBe('fail');
    expect(judgeTest(input({ reboot: { required: true, rebooted: true } })).verdict).toBe('pass');
  });

  it('without Prometheus the services alone decide, and the judgement says so', () => {
    const j = judgeTest(input({ canary: null }));
    expect(j).toMatchObject({ judge: 'salt_only', verdict: 'pass', score: null, metrics: [], policy: null });
    expect(j.notes.join(' ')).toMatch(/Prometheus is not configured/);
    expect(judgeTest(input({ canary: null, services: { baseline: {}, post: {} } })).verdict).toBe('inconclusive');
  });
});

describe('orchestrator_config.canary_metrics / canary_policy', () => {
  it('migration 0006 seeds exactly the default metrics and the policy defaults', () => {
    const text = readFileSync('sql/0006_canary_config.sql', 'utf8');
    const literal = (key: string) =>
      JSON.parse(new RegExp(`\\('${key}', '([\\s\\S]*?)', '`).exec(text)![1]!.replace(/''/g, "'"));
    expect(literal('canary_metrics')).toEqual(DEFAULT_CANARY_METRICS);
    expect(literal('canary_policy')).toEqual(canaryPolicySchema.parse({}));
    expect(canaryMetricsSchema.parse(literal('canary_metrics')).map(canaryMetricOf)).toEqual(metrics);
  });

  it('refuses a metric without $INSTANCE, a duplicate name, or marginal above pass', () => {
    const m = DEFAULT_CANARY_METRICS[0]!;
    expect(canaryMetricsSchema.safeParse([{ ...m, query: 'up' }]).success).toBe(false);
    expect(canaryMetricsSchema.safeParse([m, m]).success).toBe(false);
    expect(canaryPolicySchema.safeParse({ pass_score: 70, marginal_score: 80 }).success).toBe(false);
    expect(
      canaryMetricsSchema.parse([
        {
          name: 'errors',
          query: 'rate(x{instance="$INSTANCE"}[$RANGE])',
          direction: 'increase_bad',
          allowed_effect: { value: 0 },
        },
      ])[0],
    ).toMatchObject({
      weight: 1,
      critical: false,
      optional: false,
      min_samples: 10,
      allowed_effect: { unit: 'absolute' },
    });
  });
});

describe("judgeTest: the teams' own health checks (spm.healthcheck) veto", () => {
  const pass = { name: 'api', ok: true, comment: ' Status 200 was found.' };
  const fail = {
    name: 'tls_handshake',
    ok: false,
    comment: 'Command "openssl s_client" run (exit 1: handshake failure)',
  };

  it('every check passing keeps the pass, and the checks are in the evidence by name', () => {
    const j = judgeTest(input({ teamChecks: { checks: [pass] } }));
    expect(j.verdict).toBe('pass');
    expect(j.checks.find((c) => c.check === 'team_healthchecks')).toEqual({
      check: 'team_healthchecks',
      ok: true,
      results: [pass],
      detail: '1 passed',
    });
  });

  it('one failed check fails the test on its own, with the check named, whatever the metrics say', () => {
    const j = judgeTest(input({ teamChecks: { checks: [pass, fail] } }));
    expect(j.verdict).toBe('fail');
    expect(j.failedTeamChecks).toEqual(['tls_handshake']);
    expect(machineVerdict(j).reason).toMatch(
      /team health check\(s\) failed after the patch: tls_handshake \(.*handshake failure/,
    );
  });

  it('checks that could not run are inconclusive, never a pass', () => {
    const j = judgeTest(
      input({
        teamChecks: {
          error: "Salt could not run the states: No matching sls found for 'spm.healthcheck' in env 'base'",
        },
      }),
    );
    expect(j.verdict).toBe('inconclusive');
    expect(j.reasons[0]).toMatch(/team health checks could not run: .*No matching sls/);
    expect(j.checks.find((c) => c.check === 'team_healthchecks')?.ok).toBeNull();
  });

  it('no checks configured, or switched off: the services and metrics decide, and the notes say so', () => {
    const none = judgeTest(input({ teamChecks: { checks: [] } }));
    expect(none.verdict).toBe('pass');
    expect(none.notes.join(' ')).toMatch(/no team health checks are configured/);
    const off = judgeTest(input({ teamChecks: null }));
    expect(off.verdict).toBe('pass');
    expect(off.notes.join(' ')).toMatch(/switched off/);
    expect(off.checks.map((c) => c.check)).toEqual(['failed_services', 'reboot']);
  });
});
