/**
 * A test that times out while its UYUNI apply is still pending (issue 11): the test-system
 * rollback first settles the test's actions — a queued apply is cancelled, so it can never run
 * after the rollback; a picked-up one cannot be cancelled, and the rollback does not run under it
 * (a human decides). Against the lab's UYUNI (Queued → Picked Up → Completed, cancelActions refused
 * once picked up) and Salt, with the real engine in process.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createEnginePorts } from '../src/engine/index.ts';
import { ENGINE_LAB_CONFIG, engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { startActorSystem, type ActorSystem } from '../src/machines/system.ts';
import { DbClock } from '../src/persistence/clock.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { SaltClient } from '../src/services/salt/client.ts';
import { loadThresholds, settingsFrom } from '../src/services/settings.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { UyuniSync } from '../src/services/uyuni/sync.ts';
import { waitForStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

const THRESHOLDS = {
  cpu_delta_percent: 20,
  memory_delta_percent: 15,
  max_failed_services: 0,
  wait_after_patch_seconds: 10,
  wait_after_reboot_seconds: 10,
  reboot_timeout_seconds: 600,
  // 60 × 50 ms: the apply's wait times out after 3 s.
  step_timeout_seconds: 60,
  retry_base_seconds: 5,
  retry_max_seconds: 20,
  retry_max_attempts: 20,
  poll_seconds: 1,
  metrics_window_seconds: 5,
  time_scale_ms: 50,
};
const TEST_SYSTEM = { id: 1_000_020_001, name: 'ubuntu-2404-test-01.lab' };

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(1), { pickupMs: 50, runMs: 150, rebootMs: 500 });
let sys: ActorSystem;
let uyuni: UyuniClient;
let clock: DbClock;

beforeAll(async () => {
  t = await createTestDatabase();
  const urls = await world.start();
  await setConfigValue(t.db, 'test_thresholds', THRESHOLDS, 'test');
  for (const [k, v] of Object.entries(ENGINE_LAB_CONFIG)) await setConfigValue(t.db, k, v, 'test');
  uyuni = new UyuniClient({
    url: urls.uyuni,
    user: 'admin',
    password: 'admin',
    verifySsl: true,
    timeoutMs: 5000,
    syncWorkers: 4,
  });
  const salt = new SaltClient({ url: urls.salt, user: 'salt', password: 'salt', eauth: 'pam', timeoutMs: 5000 });
  const sync = new UyuniSync({
    db: t.db,
    logger: silentLogger,
    uyuni,
    prefixes: ['test-', 'prod-'],
    testPrefix: 'test-',
  });
  expect((await sync.run('api')).status).toBe('completed');
  clock = new DbClock(t.db);
  await clock.start();
  sys = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'rollback-actions',
    leaseTtlMs: 30_000,
    pollMs: 50,
    clock,
    ports: createEnginePorts({ db: t.db, logger: silentLogger, clock, uyuni, salt }),
  });
}, 60_000);

afterAll(async () => {
  await sys?.stop();
  clock?.stop();
  await uyuni?.closeShared();
  await world.stop();
  await t?.drop();
});

async function testOf(errataId: string): Promise<number> {
  const id = await sys.host.create(
    {
      errataId,
      errataVersion: '1',
      targetOs: 'ubuntu',
      priority: 0,
      successScore: 50,
      notes: null,
      settings: settingsFrom(await loadThresholds(t.db)),
    },
    { actor: 'olga' },
  );
  await sys.host.send(id, { type: 'START_TEST', by: 'olga', testSystem: TEST_SYSTEM }, { actor: 'olga' });
  return id;
}
/** The test system's apply actions in the lab UYUNI, newest last. */
const applyActions = (advisory: string) =>
  [...world.uyuni.actions.values()].filter(
    (a) => a.type === 'Patch Update' && a.systems.has(TEST_SYSTEM.id) && a.name.includes(advisory),
  );
const reasonOf = (id: number) =>
  t.db.oneFirst(
    sql.type(z.object({ r: z.string().nullable() }))`SELECT status_reason AS r FROM patch_test_queue WHERE id = ${id}`,
  );

describe('a test rollback settles the test’s UYUNI actions first', () => {
  it('an apply still queued when the test timed out is cancelled, and never runs after the rollback', async () => {
    world.scenario('6100-1', { neverPickedUp: true });
    const id = await testOf('6100-1');
    const status = await waitForStatus(
      t.db,
      id,
      (s) => ['rolled_back', 'needs_attention', 'pending_approval'].includes(s),
      60_000,
    );
    expect(status).toBe('rolled_back');
    const [action] = applyActions('6100-1');
    expect(action, 'the test scheduled its apply').toBeDefined();
    expect(action!.systems.get(TEST_SYSTEM.id)?.cancelled).toBe(true);
    // Long after: the errata never reached the system.
    world.scenario('6100-1', {});
    await new Promise((r) => setTimeout(r, 500));
    expect(world.countOf(`apply|${TEST_SYSTEM.id}|6100-1`)).toBe(0);
  }, 90_000);

  it('an apply picked up and still running cannot be cancelled: the rollback does not run under it, a human decides', async () => {
    world.scenario('6101-1', { hang: true });
    const before =
      world.countOf(`pkg_install|${TEST_SYSTEM.name}|`) + world.countOf(`package_install|${TEST_SYSTEM.id}|`);
    const id = await testOf('6101-1');
    const status = await waitForStatus(
      t.db,
      id,
      (s) => ['rolled_back', 'needs_attention', 'pending_approval'].includes(s),
      60_000,
    );
    expect(status).toBe('needs_attention');
    expect(await reasonOf(id)).toMatch(
      /still runs on the test system \(picked up, not cancellable\): not rolling back under it/,
    );
    const after =
      world.countOf(`pkg_install|${TEST_SYSTEM.name}|`) + world.countOf(`package_install|${TEST_SYSTEM.id}|`);
    expect(after, 'nothing restored under a running apply').toBe(before);
  }, 90_000);
});
