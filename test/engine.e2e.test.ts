/**
 * The test engine and production rollout end to end: the real daemon (child process) against the
 * lab world (UYUNI XML-RPC, Salt API, per-system node_exporter endpoints) with a **real Prometheus**
 * (Debian package) scraping the lab's exporters, and a real SMTP sink.
 *
 * (1) a good errata: queued → tested with evidence → pending_approval → approve → waves → completed;
 * (2) an errata that breaks nginx fails validation, the test system is rolled back (package level),
 *     and after three such failures a similar errata scores lower;
 * (3) a kernel errata reboots, validates and passes; one whose host never returns → needs_attention;
 * (4) a production wave over the error threshold halts, later waves never start, an operator
 *     rollback of the failed systems succeeds;
 * (6) an errata that breaks a team health check (spm.healthcheck through Salt's state.apply) fails
 *     the test with that check named, and the test system is rolled back;
 * (5) Prometheus down at the baseline → the step waits (retried), nothing is applied until it is back;
 *     Prometheus down for the post window → inconclusive, never passed.
 *
 * Validation is the window judge (issue 13) on time-scaled windows: 12 points at a 0.5 s step
 * before the patch and after stabilisation (Prometheus scrapes every 0.5 s). test/judge.e2e.test.ts
 * tries the judge itself on a noisy host.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ENGINE_LAB_CONFIG, engineFleet } from '../src/lab/fleet.ts';
import { SmtpSink } from '../src/lab/sinks.ts';
import { serviceActive } from '../src/lab/salt.ts';
import { LabWorld } from '../src/lab/world.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { adminToken, api, labEngineEnv } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startChild, waitForHttp, waitUntil, type Child } from './helpers/proc.ts';
import { startPrometheus, type PromProc } from './helpers/prometheus.ts';

export const ENGINE_THRESHOLDS = {
  cpu_delta_percent: 20,
  memory_delta_percent: 15,
  max_failed_services: 0,
  wait_after_patch_seconds: 30,
  wait_after_reboot_seconds: 20,
  reboot_timeout_seconds: 200,
  step_timeout_seconds: 600,
  retry_base_seconds: 10,
  retry_max_seconds: 20,
  retry_max_attempts: 8,
  poll_seconds: 2,
  metrics_window_seconds: 5,
  time_scale_ms: 100,
};
/** The window judge's windows in configured seconds (× 100 ms): 6 s, 12 points at a 0.5 s step. */
export const ENGINE_CANARY_POLICY = {
  step_seconds: 5,
  baseline_window_seconds: 60,
  post_window_seconds: 60,
  baseline_wait_seconds: 400,
};

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(10), { pickupMs: 150, runMs: 400, rebootMs: 1500 });
const smtp = new SmtpSink();
let prom: PromProc;
let child: Child;
let call: ReturnType<typeof api>;
const TEST_SYSTEM = 'ubuntu-2404-test-01.lab';

beforeAll(async () => {
  t = await createTestDatabase();
  // The team's own checks on the test system (pillar spm:healthchecks, run by state.apply spm.healthcheck).
  world.host(TEST_SYSTEM, {
    healthchecks: {
      web: { type: 'http', url: 'http://127.0.0.1/healthz', service: 'nginx.service' },
      tls_handshake: { type: 'command', command: 'openssl s_client -connect 127.0.0.1:443 </dev/null' },
    },
  });
  const urls = await world.start();
  prom = await startPrometheus(world.prometheusConfig({ scrapeIntervalS: 0.5 }));
  const mail = await smtp.listen();
  await setConfigValue(t.db, 'test_thresholds', ENGINE_THRESHOLDS, 'test');
  for (const [k, v] of Object.entries(ENGINE_LAB_CONFIG)) await setConfigValue(t.db, k, v, 'test');
  await setConfigValue(t.db, 'canary_policy', ENGINE_CANARY_POLICY, 'test');
  // A CLM project: approval promotes TEST → PROD before the deployment.
  world.uyuni.clm.set('spm-ubuntu', [
    { id: 1, label: 'dev', name: 'Development', version: 3, status: 'built' },
    { id: 2, label: 'test', name: 'Test', version: 3, status: 'built' },
    { id: 3, label: 'prod', name: 'Production', version: 2, status: 'built' },
  ]);
  await setConfigValue(
    t.db,
    'clm',
    { project_label: 'spm-ubuntu', test_environment: 'test', prod_environment: 'prod' },
    'test',
  );
  await setConfigValue(
    t.db,
    'notification_config',
    {
      email_enabled: true,
      recipients: ['ops@example.test'],
      webhook_enabled: false,
      webhook_url: '',
      digest_time: '08:00',
    },
    'test',
  );
  const port = await freePort();
  child = startChild(
    ['serve'],
    labEngineEnv(urls, {
      DATABASE_URL: t.url,
      HTTP_PORT: String(port),
      INSTANCE_ID: 'engine-e2e',
      SCHEDULER_POLL_MS: '200',
      PROMETHEUS_URL: prom.url,
      PROMETHEUS_TIMEOUT_SECONDS: '2',
      SMTP_HOST: mail.host,
      SMTP_PORT: String(mail.port),
    }),
  );
  await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, child);
  call = api(`http://127.0.0.1:${port}/api/v1`, await adminToken(t.db));
  // The startup sync fills the errata cache and the systems table.
  await until(
    async () => (await call('GET', '/sync/status')).body?.last_run?.status === 'completed',
    30_000,
    'first sync',
  );
}, 90_000);

afterAll(async () => {
  child?.proc.kill('SIGTERM');
  await child?.exited;
  await prom?.dispose();
  await smtp.close();
  await world.stop();
  await t?.drop();
});

const until = (fn: () => Promise<boolean>, ms: number, what: string) => waitUntil(fn, ms, what, { child: () => child });

async function queue(errata: string): Promise<number> {
  const r = await call('POST', '/queue', { errata_ids: [errata] });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.results[0].id as number;
}
async function entry(id: number) {
  const b = (await call('GET', `/queue/${id}`)).body;
  return { ...b.entry, state: b.state, tests: b.tests };
}
async function testOf(id: number) {
  return (await entry(id)).tests.at(-1);
}
async function waitStatus(id: number, statuses: string[], ms = 60_000): Promise<any> {
  let last: any;
  try {
    await until(
      async () => {
        last = await entry(id);
        return statuses.includes(last.status);
      },
      ms,
      `entry ${id} to reach ${statuses.join('|')}`,
    );
  } catch (err) {
    const history = (await call('GET', `/queue/${id}/history`)).body;
    throw new Error(`${(err as Error).message}
last: ${last?.state} ${JSON.stringify(last?.status_reason ?? '')}
history: ${JSON.stringify(history).slice(-3000)}`);
  }
  return last;
}
const phasesOf = (queueId: number) =>
  t.db.any(sql.type(z.object({ phase: z.string(), outcome: z.string().nullable(), evidence: z.unknown() }))`
    SELECT p.phase, p.outcome, p.evidence FROM patch_test_phases p WHERE p.queue_id = ${queueId} ORDER BY p.started_at, p.id`);

describe('test engine and production rollout against the lab with a real Prometheus', () => {
  it('(1) a good errata is tested with evidence, approved, deployed in waves and completed', async () => {
    // Prometheus has scraped every system before the first baseline.
    const rates = encodeURIComponent('count(rate(node_cpu_seconds_total{mode="idle",cpu="0"}[5s]))');
    await until(
      async () =>
        ((await (await fetch(`${prom.url}/api/v1/query?query=${rates}`)).json()) as any).data.result[0]?.value[1] ===
        '11',
      30_000,
      'prometheus scraping every system',
    );
    const id = await queue('6100-1');
    const e = await waitStatus(id, ['pending_approval'], 60_000);
    expect(e.status).toBe('pending_approval');
    const test = await testOf(id);
    expect(test.result).toBe('passed');
    expect(test.baseline_metrics.source).toEqual({ metrics: 'prometheus', services: 'salt' });
    expect(test.baseline_metrics.cpuPercent).toBeGreaterThan(0);
    // Judged on windows: every metric passed, the live service check too.
    expect(test.metrics_delta).toMatchObject({ judge: 'canary', verdict: 'pass', score: 100 });
    expect(
      test.metrics_delta.metrics.every((m: any) => m.classification === 'pass' && m.samples.post.length >= 10),
    ).toBe(true);
    expect(test.metrics_delta.checks.map((c: any) => [c.check, c.ok])).toEqual([
      ['failed_services', true],
      ['reboot', true],
      ['team_healthchecks', true],
    ]);
    expect(test.baseline_metrics.window.samples.memory_used_percent.length).toBeGreaterThanOrEqual(10);
    expect(test.package_versions_before).toEqual({ curl: '0.9-1', libcurl4: '0.9-1' });
    expect((await phasesOf(id)).map((p) => p.phase)).toEqual([
      'snapshot',
      'baseline',
      'apply',
      'await_action',
      'stabilize',
      'check_reboot',
      'validate',
    ]);
    expect(world.countOf(`apply|1000020001|6100-1`)).toBe(1);
    await until(
      async () => smtp.messages.some((m) => m.subject?.includes('Approval needed: 6100-1') === true),
      15_000,
      'approval mail',
    );

    const ok = await call('POST', `/approvals/${id}/approve`, { reason: 'evidence reviewed' });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    await waitStatus(id, ['completed'], 90_000);
    expect(world.uyuni.promotions, 'CLM TEST → PROD promoted once').toBe(1);
    expect(world.uyuni.clm.get('spm-ubuntu')![2]).toMatchObject({ version: 3, status: 'built' });
    const deps = (await call('GET', '/deployments?errata_id=6100-1')).body.items;
    expect(deps).toHaveLength(1);
    const d = (await call('GET', `/deployments/${deps[0].id}`)).body;
    expect(d.status).toBe('completed');
    expect(d.total_systems).toBe(10);
    expect(d.waves.map((w: any) => w.systems.length)).toEqual([1, 2, 3, 4]);
    expect(
      d.systems.every((s: any) => s.status === 'succeeded' && s.action_id !== null && s.packages_before !== null),
    ).toBe(true);
    // One UYUNI action per wave, whatever its size.
    expect(new Set(d.systems.map((s: any) => s.action_id)).size).toBe(4);
    for (const s of world.fleet.systems)
      expect(world.salt.minions.get(s.name)!.packages.get('curl')).toBe('8.5.0-1ubuntu1');
    expect(world.duplicates()).toEqual([]);

    // After completion an operator rolls two systems back (a durable rollback job: the actor is final).
    const two = d.systems.slice(-2).map((s: any) => s.system_id as number);
    const rb = await call('POST', `/deployments/${d.id}/rollback`, {
      type: 'package',
      systems: two,
      reason: 'curl regression on two hosts',
    });
    expect(rb.status, JSON.stringify(rb.body)).toBe(202);
    await until(
      async () => (await call('GET', `/rollback/${rb.body.rollback_id}`)).body.status === 'completed',
      30_000,
      'rollback of the completed deployment',
    );
    for (const s of d.systems) {
      const want = two.includes(s.system_id) ? '0.9-1' : '8.5.0-1ubuntu1';
      expect(world.minionOf(s.system_id).packages.get('curl'), s.system_name).toBe(want);
    }
    const after = (await call('GET', `/deployments/${d.id}`)).body;
    expect(after).toMatchObject({ status: 'completed', rollback_performed: true });
    expect(
      after.systems
        .filter((s: any) => s.status === 'rolled_back')
        .map((s: any) => s.system_id)
        .sort(),
    ).toEqual([...two].sort());
    const again = await call('POST', `/deployments/${d.id}/rollback`, { type: 'package', systems: [1], reason: 'x' });
    expect(again.status).toBe(400);
    // System level: snapper rollback to the pre-wave snapshot, active after one reboot.
    const third = d.systems.at(-3);
    const name = world.minionOf(third.system_id).id;
    const sysRb = await call('POST', `/deployments/${d.id}/rollback`, {
      type: 'system',
      systems: [third.system_id],
      reason: 'full restore of one host',
    });
    expect(sysRb.status, JSON.stringify(sysRb.body)).toBe(202);
    await until(
      async () => (await call('GET', `/rollback/${sysRb.body.rollback_id}`)).body.status === 'completed',
      30_000,
      'system rollback',
    );
    expect(world.minionOf(third.system_id).packages.get('curl')).toBe('0.9-1');
    expect(world.salt.effects.get(`reboot|${name}`), 'one reboot activates the snapshot').toBe(1);
    expect(world.countOf(`snapper_rollback|${name}|`)).toBe(1);
  }, 180_000);

  it('(2) an errata that breaks nginx fails validation and the test system is rolled back; the score of similar errata learns', async () => {
    for (const n of ['6101-1', '6102-1', '6103-1', '6104-1']) world.scenario(n, { breaksService: 'nginx.service' });
    const before = (await call('POST', '/risk-profile/calculate', { errata_ids: ['6104-1'] })).body.calculated[0];
    for (const [i, n] of ['6101-1', '6102-1', '6103-1'].entries()) {
      const id = await queue(n);
      const e = await waitStatus(id, ['rolled_back', 'needs_attention'], 60_000);
      expect(e.status, JSON.stringify(e)).toBe('rolled_back');
      const test = await testOf(id);
      expect(test).toMatchObject({
        result: 'failed',
        rollback_type: 'package',
        rollback_status: 'completed',
        failed_services: ['nginx.service'],
      });
      expect(test.failure_reason).toContain('nginx.service');
      expect(serviceActive(world.salt.minions.get(TEST_SYSTEM)!, 'nginx.service')).toBe(true);
      expect(world.salt.minions.get(TEST_SYSTEM)!.packages.get('nginx-core')).toBe('0.9-1');
      expect(world.countOf(`pkg_install|${TEST_SYSTEM}|`), 'one package rollback per failed test').toBe(i + 1);
    }
    const history = await t.db.one(
      sql.unsafe`SELECT sum(times_tested)::int AS tested, sum(times_failed)::int AS failed FROM patch_risk_profile WHERE errata_id IN ('6101-1','6102-1','6103-1')`,
    );
    expect(history).toEqual({ tested: 3, failed: 3 });
    const after = (await call('POST', '/risk-profile/calculate', { errata_ids: ['6104-1'] })).body;
    expect(after.calculated[0].score).toBeLessThan(before.score);
    expect((await call('GET', '/risk-profile/6104-1')).body.score_breakdown.history).toBe(20);
  }, 240_000);

  it('(3) a kernel errata reboots the test system, validates and passes; one whose host never returns needs attention', async () => {
    const id = await queue('6110-1');
    await waitStatus(id, ['pending_approval'], 90_000);
    const phases = (await phasesOf(id)).map((p) => p.phase);
    expect(phases).toEqual([
      'snapshot',
      'baseline',
      'apply',
      'await_action',
      'stabilize',
      'check_reboot',
      'reboot',
      'await_host',
      'settle',
      'validate',
    ]);
    expect(world.countOf('reboot|1000020001'), 'one reboot').toBe(1);
    const test = await testOf(id);
    expect(test).toMatchObject({ result: 'passed', required_reboot: true, reboot_successful: true });
    await call('POST', `/approvals/${id}/reject`, { reason: 'kept for the next window' });

    world.scenario('6111-1', { noReturn: true });
    const lost = await queue('6111-1');
    // The reboot times out → the test failed → the rollback cannot reach the host → a human decides.
    const e = await waitStatus(lost, ['needs_attention'], 120_000);
    expect(e.status_reason).toMatch(/not responding/);
    expect((await testOf(lost)).failure_reason).toMatch(/reboot/i);
    // The host is gone: bring it back for the next tests (the operator's job), and mark the entry failed.
    world.salt.minions.get(TEST_SYSTEM)!.downUntil = 0;
    const mf = await call('POST', `/queue/${lost}/mark-failed`, { reason: 'host restored by hand' });
    expect(mf.status, JSON.stringify(mf.body)).toBe(200);
  }, 240_000);

  it('(4) a wave over the error threshold halts, later waves never start, and an operator rollback of the failed systems succeeds', async () => {
    // Wave 1 (systems 2–3 of prod-ubuntu-web) breaks nginx on both: 2 failures > threshold 1.
    const prod = world.fleet.systems.filter((s) => s.group === 'prod-ubuntu-web').sort((a, b) => a.id - b.id);
    const victims = [prod[1]!.id, prod[2]!.id];
    world.scenario('6120-1', { breaksService: 'nginx.service', onlySystems: victims });
    const id = await queue('6120-1');
    await waitStatus(id, ['pending_approval'], 60_000);
    await call('POST', `/approvals/${id}/approve`, {});
    const e = await waitStatus(id, ['needs_attention'], 90_000);
    expect(e.status_reason).toMatch(/wave 1 halted/);
    const dep = (await call('GET', '/deployments?errata_id=6120-1')).body.items[0];
    const d = (await call('GET', `/deployments/${dep.id}`)).body;
    expect(d.status).toBe('halted');
    expect(d.halt_reason).toContain('2 system(s) failed');
    expect(
      d.systems
        .filter((s: any) => s.status === 'failed')
        .map((s: any) => s.system_id)
        .sort(),
    ).toEqual(victims.sort());
    expect(
      d.systems.filter((s: any) => s.wave >= 2).every((s: any) => s.status === 'pending' && s.action_id === null),
    ).toBe(true);
    expect(world.countOf('apply|') - world.countOf('apply|1000020001')).toBeGreaterThan(0);
    for (const s of prod.slice(3)) expect(world.countOf(`apply|${s.id}|6120-1`)).toBe(0);

    const r = await call('POST', `/deployments/${dep.id}/rollback`, {
      type: 'package',
      systems: victims,
      reason: 'nginx down on two web nodes',
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    await waitStatus(id, ['rolled_back'], 60_000);
    const after = (await call('GET', `/deployments/${dep.id}`)).body;
    // The canary of wave 0 still has the errata: the deployment keeps its status, with the rollback recorded.
    expect(after).toMatchObject({ status: 'halted', rollback_performed: true, rollback_type: 'package' });
    expect(after.rollbacks).toHaveLength(1);
    expect(after.rollbacks[0]).toMatchObject({
      status: 'completed',
      rollback_type: 'package',
      systems_succeeded: 2,
      systems_failed: 0,
    });
    for (const sid of victims) {
      expect(serviceActive(world.minionOf(sid), 'nginx.service')).toBe(true);
      expect(world.countOf(`pkg_install|${world.minionOf(sid).id}|`), 'one package rollback per system').toBe(1);
    }
    expect((await call('GET', `/rollback/${after.rollbacks[0].id}`)).status).toBe(200);
    expect(world.duplicates()).toEqual([]);
  }, 240_000);

  it('(5) Prometheus down at the baseline → nothing applied until it is back; down for the post window → inconclusive, never passed', async () => {
    await prom.stop();
    const id = await queue('6121-1');
    // The baseline cannot read its window: the step is retried, the errata is not applied.
    await until(
      async () => (await phasesOf(id)).some((p: any) => p.phase === 'baseline' && p.outcome === 'retry'),
      30_000,
      'baseline retried',
    );
    expect(world.countOf('apply|1000020001|6121-1'), 'never patched without a baseline').toBe(0);
    await prom.start();
    await waitStatus(id, ['pending_approval'], 90_000);
    const test = await testOf(id);
    expect(test.result).toBe('passed');
    expect(test.metrics_delta.verdict).toBe('pass');
    await call('POST', `/approvals/${id}/reject`, { reason: 'done' });

    const blind = await queue('6122-1');
    await until(
      async () => JSON.stringify((await entry(blind)).state_value) === '{"testing":"validate"}',
      60_000,
      'validate',
    );
    await prom.stop();
    // The post window passes without Prometheus; validation is retried (the same window) until it answers.
    await until(
      async () => (await phasesOf(blind)).some((p: any) => p.phase === 'validate' && p.outcome === 'retry'),
      30_000,
      'validate retried',
    );
    await prom.start();
    const e = await waitStatus(blind, ['needs_attention', 'pending_approval', 'passed'], 90_000);
    expect(e.status).toBe('needs_attention');
    const bt = await testOf(blind);
    expect(bt.result).toBe('inconclusive');
    expect(bt.metrics_delta.verdict).toBe('inconclusive');
    expect(e.status_reason).toMatch(/no data after the patch/);
    // An inconclusive test holds the test system until a human decides: free it for the next test.
    const mf = await call('POST', `/queue/${blind}/mark-failed`, { reason: 'looked at by hand' });
    expect(mf.status, JSON.stringify(mf.body)).toBe(200);
  }, 240_000);

  it('(6) an errata that breaks a team health check fails the test with the check named in the evidence, and is rolled back', async () => {
    world.scenario('6123-1', { breaksHealthcheck: 'tls_handshake' });
    const applies = world.salt.count('state.apply');
    const id = await queue('6123-1');
    const e = await waitStatus(id, ['rolled_back', 'needs_attention', 'pending_approval'], 90_000);
    expect(e.status, JSON.stringify(e)).toBe('rolled_back');
    expect(e.status_reason).toMatch(/team health check\(s\) failed after the patch: tls_handshake/);
    const test = await testOf(id);
    expect(test).toMatchObject({ result: 'failed', rollback_type: 'package', rollback_status: 'completed' });
    expect(test.failure_reason).toContain('tls_handshake');
    const team = test.metrics_delta.checks.find((c: any) => c.check === 'team_healthchecks');
    expect(team).toMatchObject({ ok: false, detail: 'failed: tls_handshake' });
    expect(team.results.map((r: any) => [r.name, r.ok])).toEqual([
      ['tls_handshake', false],
      ['web', true],
    ]);
    expect(test.metrics_delta.failedServices).toEqual([]);
    const validate = (await phasesOf(id)).find((p) => p.phase === 'validate');
    expect((validate?.evidence as { failedTeamChecks?: string[] } | undefined)?.failedTeamChecks).toEqual([
      'tls_handshake',
    ]);
    expect(world.salt.count('state.apply')).toBeGreaterThan(applies);
  }, 240_000);
});
