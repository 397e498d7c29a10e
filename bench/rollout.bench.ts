/**
 * bench:rollout — what the orchestrator itself costs in a test and in a production wave.
 *
 * For production waves of 10, 100 and 1,000 systems (one wave each: canary 0, 100 %), the real
 * daemon (child process) runs against the lab world: tests of harmless errata, then one approval
 * and its deployment. Reported per row:
 * - overhead per test = test wall time − configured waits (stabilise) − lab action time;
 * - overhead per wave = wave wall time − configured waits − lab action time;
 * - UYUNI calls per wave (must not grow with the systems in the wave) and Salt calls per wave.
 * Waits are shortened (`time_scale_ms`); the lab's actions take `pickupMs + runMs`.
 * Prometheus is not used here (its scrape cadence is not orchestrator overhead): service checks go to Salt.
 *
 * Last line: `bench:rollout: overhead_per_test_s=… overhead_per_wave_s=… uyuni_calls_per_wave=…`.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { ENGINE_LAB_CONFIG, engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { createDb } from '../src/persistence/db.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { adminToken, api } from '../test/helpers/daemon.ts';
import { createMigratedDatabase, startScratchPostgres } from '../test/helpers/pgServer.ts';
import { freePort, startChild, waitForHttp, waitUntil } from '../test/helpers/proc.ts';

const SIZES = (process.env.BENCH_SIZES ?? '10,100,1000').split(',').map(Number);
const TESTS = Number(process.env.BENCH_TESTS ?? 4);
const UNIT_MS = 10; // one configured "second"
const WAIT_AFTER_PATCH_S = 30; // → 0.3 s
const PICKUP_MS = 100;
const RUN_MS = 300;
const until = (fn: () => Promise<boolean>, ms: number) => waitUntil(fn, ms, 'bench:rollout step', { pollMs: 25 });

const pg = await startScratchPostgres('rollout-bench');
const rows: {
  systems: number;
  testS: number;
  testOverheadS: number;
  waveS: number;
  waveOverheadS: number;
  uyuniCalls: number;
  saltCalls: number;
  callsByMethod: Record<string, number>;
}[] = [];

try {
  for (const size of SIZES) rows.push(await runOne(size));
} finally {
  await pg.stop();
}

async function runOne(prodSystems: number) {
  const dbUrl = await createMigratedDatabase(pg.adminUrl, 'rollout');
  const db = await createDb({ url: dbUrl, poolMax: 2 });
  const world = new LabWorld(engineFleet(prodSystems), { pickupMs: PICKUP_MS, runMs: RUN_MS, rebootMs: 200 });
  const urls = await world.start();
  await setConfigValue(
    db,
    'test_thresholds',
    {
      cpu_delta_percent: 20,
      memory_delta_percent: 15,
      max_failed_services: 0,
      wait_after_patch_seconds: WAIT_AFTER_PATCH_S,
      wait_after_reboot_seconds: 10,
      reboot_timeout_seconds: 6000,
      step_timeout_seconds: 60000,
      retry_base_seconds: 10,
      retry_max_seconds: 100,
      retry_max_attempts: 8,
      poll_seconds: 5,
      metrics_window_seconds: 60,
      time_scale_ms: UNIT_MS,
    },
    'bench',
  );
  for (const [k, v] of Object.entries(ENGINE_LAB_CONFIG)) await setConfigValue(db, k, v, 'bench');
  await setConfigValue(
    db,
    'rollout_policy',
    {
      canary_systems: 0,
      wave_percentages: [100],
      max_failed_systems: 10,
      max_failed_percent: 50,
      min_window_remaining_minutes: 0,
    },
    'bench',
  );
  const port = await freePort();
  const child = startChild(['serve'], {
    DATABASE_URL: dbUrl,
    HTTP_PORT: String(port),
    LOG_LEVEL: 'warn',
    INSTANCE_ID: `bench-${prodSystems}`,
    NODE_ENV: 'test',
    SCHEDULER_POLL_MS: '50',
    UYUNI_URL: urls.uyuni,
    UYUNI_USER: 'admin',
    UYUNI_PASSWORD: 'admin',
    NVD_ENABLED: 'false',
    UYUNI_POLL_INTERVAL_MINUTES: '600',
    SALT_API_URL: urls.salt,
    SALT_USER: 'salt',
    SALT_PASSWORD: 'salt',
  });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, child);
    const call = api(`http://127.0.0.1:${port}/api/v1`, await adminToken(db));
    await until(async () => (await call('GET', '/sync/status')).body?.last_run?.status === 'completed', 60_000);
    const status = (id: number) =>
      db.oneFirst(sql.type(z.object({ status: z.string() }))`SELECT status FROM patch_test_queue WHERE id = ${id}`);

    // Tests: harmless errata, one after the other on the lane.
    const names = ['6100-1', '6120-1', '6121-1', '6122-1', '6123-1', '6124-1', '6125-1'].slice(0, TESTS);
    const ids: number[] = [];
    for (const n of names) ids.push((await call('POST', '/queue', { errata_ids: [n] })).body.results[0].id);
    for (const id of ids) {
      await until(async () => (await status(id)) === 'pending_approval', 120_000).catch(async (err) => {
        throw new Error(
          `${(err as Error).message}: entry ${id} is ${await status(id)}\n${child.stdout().slice(-2000)}`,
        );
      });
    }
    process.stderr.write(`bench:rollout: ${prodSystems} systems: tests done\n`);
    const tests = await db.any(sql.type(z.object({ s: z.number() }))`
      SELECT extract(epoch FROM completed_at - started_at)::float8 AS s FROM patch_tests WHERE queue_id = ANY(${sql.array(ids, 'int8')})`);
    const testS = tests.reduce((a, r) => a + r.s, 0) / tests.length;
    const waitsS = (WAIT_AFTER_PATCH_S * UNIT_MS) / 1000;
    const actionS = (PICKUP_MS + RUN_MS) / 1000;

    // One deployment: a single wave of every production system.
    const before = {
      uyuni: world.uyuni.totalCalls(),
      calls: Object.fromEntries(world.uyuni.calls),
      salt: world.salt.requests,
    };
    await call('POST', `/approvals/${ids[0]}/approve`, {});
    await until(async () => (await status(ids[0]!)) === 'completed', 600_000);
    const dep = await db.one(sql.type(z.object({ s: z.number(), waves: z.number(), ok: z.number() }))`
      SELECT extract(epoch FROM completed_at - started_at)::float8 AS s, jsonb_array_length(waves) AS waves, systems_succeeded AS ok FROM patch_deployments WHERE queue_id = ${ids[0]!}`);
    if (dep.ok !== prodSystems || dep.waves !== 1)
      throw new Error(`deployment: ${dep.ok}/${prodSystems} systems, ${dep.waves} waves`);
    const callsByMethod: Record<string, number> = {};
    for (const [m, n] of world.uyuni.calls)
      if (n - (before.calls[m] ?? 0) > 0) callsByMethod[m] = n - (before.calls[m] ?? 0);
    const uyuniCalls = world.uyuni.totalCalls() - before.uyuni;
    const saltCalls = world.salt.requests - before.salt;
    return {
      systems: prodSystems,
      testS,
      testOverheadS: testS - waitsS - actionS,
      waveS: dep.s,
      waveOverheadS: dep.s - waitsS - actionS,
      uyuniCalls,
      saltCalls,
      callsByMethod,
    };
  } finally {
    child.proc.kill('SIGTERM');
    await child.exited;
    await db.end();
    await world.stop();
  }
}

const f = (x: number) => x.toFixed(2);
console.log(
  '| wave systems | test s | test overhead s | wave s | wave overhead s | UYUNI calls / wave | Salt calls / wave | UYUNI calls by method |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|---|');
for (const r of rows) {
  console.log(
    `| ${r.systems} | ${f(r.testS)} | ${f(r.testOverheadS)} | ${f(r.waveS)} | ${f(r.waveOverheadS)} | ${r.uyuniCalls} | ${r.saltCalls} | ${Object.entries(
      r.callsByMethod,
    )
      .map(([m, n]) => `${m} ${n}`)
      .join(', ')} |`,
  );
}
console.log(
  `configured waits per test/wave ${f((WAIT_AFTER_PATCH_S * UNIT_MS) / 1000)} s, lab action time ${f((PICKUP_MS + RUN_MS) / 1000)} s, poll every ${f((5 * UNIT_MS) / 1000)} s`,
);
const big = rows[rows.length - 1]!;
const meanTestOverhead = rows.reduce((a, r) => a + r.testOverheadS, 0) / rows.length;
console.log(
  `bench:rollout: overhead_per_test_s=${f(meanTestOverhead)} overhead_per_wave_s=${f(big.waveOverheadS)} uyuni_calls_per_wave=${big.uyuniCalls}`,
);
