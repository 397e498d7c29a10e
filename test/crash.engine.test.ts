/**
 * Crash safety of the test engine and the production rollout: the daemon is killed with SIGKILL
 * at every phase boundary (each persisted transition) and inside every kind of external call (the
 * lab performs the call's effect, then the daemon dies before it hears the answer), and restarted
 * each time. The lab world lives in the test process and counts what it received: no errata is
 * applied twice to a system, no snapshot taken twice for one key, no reboot or rollback repeated.
 *
 * Flows: (A) a kernel errata: snapshot → baseline → apply → reboot → validate → approval →
 * deployment in 4 waves with reboots → completed; (B) an errata that breaks nginx: test fails →
 * package rollback of the test system → rolled_back.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ENGINE_LAB_CONFIG, engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { adminToken, api, labEngineEnv } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startChild, waitForHttp, type Child } from './helpers/proc.ts';

const THRESHOLDS = {
  cpu_delta_percent: 20,
  memory_delta_percent: 15,
  max_failed_services: 0,
  wait_after_patch_seconds: 10,
  wait_after_reboot_seconds: 10,
  reboot_timeout_seconds: 600,
  step_timeout_seconds: 1200,
  retry_base_seconds: 5,
  retry_max_seconds: 20,
  retry_max_attempts: 20,
  poll_seconds: 2,
  metrics_window_seconds: 5,
  time_scale_ms: 100,
};
const TEST_SYSTEM = 'ubuntu-2404-test-01.lab';

/** Calls whose effect (or answer) a crash must not duplicate (or lose). */
const CALLS = [
  'snapper.list_snapshots',
  'snapper.create_snapshot',
  'pkg.version',
  'service.status',
  'system.scheduleApplyErrata',
  'schedule.listCompletedSystems',
  'cmd.run',
  'system.scheduleReboot',
  'test.ping',
  'system.listSystemEvents',
  'status.uptime',
  'system.reboot',
  'pkg.install',
];

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(10), { pickupMs: 150, runMs: 400, rebootMs: 800 });
let urls: { uyuni: string; salt: string; metrics: string };
let port: number;
let child: Child;
let call: ReturnType<typeof api>;
let token: string;
let kills = 0;
const fired: string[] = [];
let armed: { kind: 'call'; methods: Set<string> } | null = null;
/** Set by a kill; the walk restarts the daemon (the exit is only seen asynchronously). */
let killed = false;

function killNow(what: string): void {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  armed = null;
  killed = true;
  fired.push(what);
  kills++;
  child.proc.kill('SIGKILL');
}
const seenCalls = new Map<string, number>();
const onCall = (method: string) => {
  seenCalls.set(method, (seenCalls.get(method) ?? 0) + 1);
  if (armed?.kind === 'call' && armed.methods.has(method)) killNow(`call:${method}`);
};

async function start(): Promise<void> {
  child = startChild(
    ['serve'],
    labEngineEnv(urls, {
      DATABASE_URL: t.url,
      HTTP_PORT: String(port),
      INSTANCE_ID: 'crash-e2e',
      SCHEDULER_POLL_MS: '100',
      LEASE_TTL_SECONDS: '10',
      UYUNI_POLL_INTERVAL_MINUTES: '600',
    }),
  );
  await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, child);
}

beforeAll(async () => {
  t = await createTestDatabase();
  urls = await world.start();
  world.uyuni.afterCall = onCall;
  world.salt.afterCall = onCall;
  await setConfigValue(t.db, 'test_thresholds', THRESHOLDS, 'test');
  for (const [k, v] of Object.entries(ENGINE_LAB_CONFIG)) await setConfigValue(t.db, k, v, 'test');
  port = await freePort();
  token = await adminToken(t.db);
  await start();
  call = api(`http://127.0.0.1:${port}/api/v1`, token);
  const synced = async () => (await call('GET', '/sync/status')).body?.last_run?.status === 'completed';
  for (let i = 0; i < 300 && !(await synced()); i++) await new Promise((r) => setTimeout(r, 100));
}, 60_000);

afterAll(async () => {
  child?.proc.kill('SIGKILL');
  await world.stop();
  await t?.drop();
});

const entryRow = (id: number) =>
  t.db.one(
    sql.type(
      z.object({ status: z.string(), revision: z.number(), reason: z.string().nullable() }),
    )`SELECT status, revision::int AS revision, status_reason AS reason FROM patch_test_queue WHERE id = ${id}`,
  );

/**
 * Drive one entry to one of `done`, killing the daemon at the next transition and at the next call
 * of each method in turn, restarting it each time. `onGate` is called at pending_approval.
 */
async function crashWalk(id: number, done: string[], onGate?: () => Promise<void>): Promise<{ status: string }> {
  let step = 0;
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (Date.now() > deadline)
      throw new Error(
        `crash walk of entry ${id} did not finish: ${JSON.stringify(await entryRow(id))} after kills ${fired.join(', ')}\n${child.stdout().slice(-3000)}`,
      );
    const e = await entryRow(id);
    if (done.includes(e.status)) return e;
    if (e.status === 'needs_attention') throw new Error(`entry ${id} needs attention: ${e.reason}`);
    if (e.status === 'pending_approval' && onGate) {
      await onGate();
      continue;
    }
    // Alternate: a kill at the next phase boundary, then inside the next call of a method not
    // yet killed in (every method once, then any of them again).
    const kind = step++ % 2 === 0 ? 'transition' : 'call';
    const before = e.revision;
    if (kind === 'call') {
      const hit = new Set(fired.filter((f) => f.startsWith('call:')).map((f) => f.slice(5)));
      const fresh = CALLS.filter((m) => !hit.has(m));
      armed = { kind: 'call', methods: new Set(fresh.length > 0 ? fresh : CALLS) };
    }
    const until = Date.now() + 6000;
    while (Date.now() < until && !killed) {
      if (kind === 'transition') {
        const now = await entryRow(id);
        if (now.revision > before) {
          killNow(`transition:${now.status}@${now.revision}`);
          break;
        }
        if (done.includes(now.status) || now.status === 'pending_approval') break;
      }
      await new Promise((r) => setTimeout(r, kind === 'transition' ? 5 : 50));
    }
    armed = null;
    if (killed) {
      killed = false;
      await child.exited;
      await start();
    }
  }
}

/** Queue an errata, approve it at the gate, and walk it to `completed` under kills. */
async function testAndDeploy(errata: string): Promise<{ id: number; e: { status: string } }> {
  const q = await call('POST', '/queue', { errata_ids: [errata] });
  expect(q.status, JSON.stringify(q.body)).toBe(201);
  const id = q.body.results[0].id as number;
  const e = await crashWalk(id, ['completed'], async () => {
    const r = await call('POST', `/approvals/${id}/approve`, {});
    expect([200, 409]).toContain(r.status);
  });
  return { id, e };
}

describe('crash safety: SIGKILL at every phase boundary and inside every external call', () => {
  it('(A) a kernel errata tested with a reboot and deployed in waves: nothing applied, snapshotted or rebooted twice', async () => {
    const { id, e } = await testAndDeploy('6110-1');
    expect(e.status).toBe('completed');
    expect(world.duplicates()).toEqual([]);
    // One reboot of the test system (UYUNI) and one of each production system (Salt).
    expect(world.countOf('reboot|1000020001')).toBe(1);
    for (const s of world.fleet.systems.filter((x) => x.group === 'prod-ubuntu-web')) {
      expect(world.countOf(`apply|${s.id}|6110-1`), s.name).toBe(1);
      expect(world.salt.effects.get(`reboot|${s.name}`) ?? 0, s.name).toBe(1);
    }
    const d = await t.db.one(
      sql.unsafe`SELECT status, systems_succeeded, systems_failed FROM patch_deployments WHERE queue_id = ${id}`,
    );
    expect(d).toEqual({ status: 'completed', systems_succeeded: 10, systems_failed: 0 });
    expect(kills).toBeGreaterThanOrEqual(15);
  }, 300_000);

  it('(B) an errata that breaks nginx: the test-system rollback happens once despite the kills', async () => {
    world.scenario('6102-1', { breaksService: 'nginx.service' });
    const before = kills;
    const q = await call('POST', '/queue', { errata_ids: ['6102-1'] }).catch((err) => {
      throw new Error(
        `${(err as Error).message}: exit ${child.proc.exitCode}/${child.proc.signalCode}\n${child.stderr().slice(-2000)}\n${child.stdout().slice(-2000)}`,
      );
    });
    const id = q.body.results[0].id as number;
    const e = await crashWalk(id, ['rolled_back']);
    expect(e.status).toBe('rolled_back');
    expect(world.duplicates()).toEqual([]);
    expect(world.countOf(`apply|1000020001|6102-1`)).toBe(1);
    expect(world.countOf(`pkg_install|${TEST_SYSTEM}|`)).toBe(1);
    expect(kills - before).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('(C) a second kernel errata, tested and deployed: each reboot (test and production) happens once', async () => {
    const { e } = await testAndDeploy('6111-1');
    expect(e.status).toBe('completed');
    expect(world.duplicates()).toEqual([]);
    expect(world.countOf('reboot|1000020001'), 'one test reboot per kernel errata').toBe(2);
    for (const s of world.fleet.systems.filter((x) => x.group === 'prod-ubuntu-web'))
      expect(world.salt.effects.get(`reboot|${s.name}`) ?? 0, s.name).toBe(2);
    // Every kind of call and the phase boundaries were hit at least once over the flows.
    const hit = new Set(fired.map((f) => f.split(':').slice(0, 2).join(':').replace(/@.*/, '')));
    const calls = CALLS.filter((m) => hit.has(`call:${m}`));
    console.log(
      `crash: kills=${kills} calls_hit=${calls.length}/${CALLS.length} missed=[${CALLS.filter((m) => !hit.has(`call:${m}`)).join(', ')}] transitions=${fired.filter((f) => f.startsWith('transition')).length}`,
    );
    expect(calls.length).toBeGreaterThanOrEqual(CALLS.length - 1);
  }, 300_000);
});
