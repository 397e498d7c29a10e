/**
 * prometheus/: the example configuration, the recording and alert rules and the Alertmanager
 * example are valid (promtool, amtool), the rules do what their unit tests say (promtool test
 * rules), and every alert of the rules file has a unit test that shows it firing and, later,
 * resolving.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const PROMTOOL = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';
const AMTOOL = process.env.AMTOOL_BIN ?? '/usr/bin/amtool';
const RULES = 'prometheus/rules/spm.rules.yml';
const RULE_TESTS = ['prometheus/rules/spm.rules.test.yml', 'prometheus/rules/spm.rules.week.test.yml'];

/** The names the design (§9) asks for, and the orchestrator's own alerts. */
const DESIGN_RECORDS = [
  'instance:cpu_usage:avg5m',
  'instance:memory_usage:percent',
  'instance:services_failed:count',
  'instance:services_running:count',
];
const DESIGN_ALERTS = ['TestSystemDown', 'ServiceFailedAfterPatch', 'PendingApprovalsTooLong'];
const OWN_ALERTS = [
  'SpmOrchestratorDown',
  'SpmSyncFailing',
  'SpmNotificationOutboxStuck',
  'SpmEntriesNeedAttention',
  'SpmSnapshotSpaceLow',
  'SpmPendingApprovalsStale',
];

function run(bin: string, args: string[]): string {
  try {
    return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (raw) {
    const e = raw as { stdout?: string; stderr?: string };
    throw new Error(`${bin} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** Parse the alert_rule_test cases of a promtool test file (its layout: `- alertname`, `eval_time`, optional `exp_alerts`). */
function alertCases(text: string): { alert: string; atS: number; firing: boolean }[] {
  const cases: { alert: string; atS: number; firing: boolean }[] = [];
  const toS = (d: string) =>
    [...d.matchAll(/(\d+)(h|m|s)/g)].reduce(
      (s, [, n, u]) => s + Number(n) * (u === 'h' ? 3600 : u === 'm' ? 60 : 1),
      0,
    );
  // Test groups restart the clock: number each case with its group.
  for (const group of text.split(/\n {2}- name: /).slice(1)) {
    const parts = group.split(/\n {6}- alertname: /).slice(1);
    for (const p of parts) {
      const alert = /^(\S+)/.exec(p)![1]!;
      const at = /eval_time: (\S+)/.exec(p)![1]!;
      cases.push({
        alert: `${group.split('\n')[0]}|${alert}`,
        atS: toS(at),
        firing: /exp_alerts:\s*\n\s+- exp_labels:/.test(p),
      });
    }
  }
  return cases;
}

describe('prometheus/', () => {
  it('promtool check config accepts the example prometheus.yml and its rule file', () => {
    expect(existsSync(PROMTOOL), `${PROMTOOL} missing: apt-get install -y prometheus (.ci/run does)`).toBe(true);
    expect(run(PROMTOOL, ['check', 'config', 'prometheus/prometheus.yml'])).toContain('SUCCESS');
  });

  it('promtool check rules accepts the rules, which carry the design names', () => {
    expect(run(PROMTOOL, ['check', 'rules', RULES])).toContain('SUCCESS');
    const text = readFileSync(RULES, 'utf8');
    for (const r of DESIGN_RECORDS) expect(text).toContain(`- record: ${r}\n`);
    for (const a of [...DESIGN_ALERTS, ...OWN_ALERTS]) expect(text).toContain(`- alert: ${a}\n`);
    expect(text).toMatch(/spm_oldest_pending_approval_hours > 48 and spm_pending_approvals_count > 0/);
  });

  it('promtool test rules passes, and every alert is shown to fire and then resolve', () => {
    expect(run(PROMTOOL, ['test', 'rules', ...RULE_TESTS])).toContain('SUCCESS');
    const alerts = [...readFileSync(RULES, 'utf8').matchAll(/- alert: (\S+)/g)].map((m) => m[1]!);
    const cases = RULE_TESTS.flatMap((f) => alertCases(readFileSync(f, 'utf8')));
    for (const alert of alerts) {
      const mine = cases.filter((c) => c.alert.endsWith(`|${alert}`));
      const fired = mine.filter((c) => c.firing);
      expect(fired.length, `${alert}: no unit test shows it firing`).toBeGreaterThan(0);
      const resolved = fired.some((f) => mine.some((c) => !c.firing && c.alert === f.alert && c.atS > f.atS));
      expect(resolved, `${alert}: no unit test shows it resolved after firing`).toBe(true);
    }
  });

  it('amtool accepts the example alertmanager.yml and routes critical alerts to on-call', () => {
    expect(existsSync(AMTOOL), `${AMTOOL} missing: apt-get install -y prometheus-alertmanager (.ci/run does)`).toBe(
      true,
    );
    expect(run(AMTOOL, ['check-config', 'prometheus/alertmanager.yml'])).toContain('SUCCESS');
    const route = (labels: string[]) =>
      run(AMTOOL, ['config', 'routes', 'test', '--config.file=prometheus/alertmanager.yml', ...labels]).trim();
    expect(route(['alertname=TestSystemDown', 'severity=critical'])).toBe('on-call');
    expect(route(['alertname=PendingApprovalsTooLong', 'severity=warning'])).toBe('patch-team');
  });
});
