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
import { engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { loadThresholds, settingsFrom } from '../src/services/settings.ts';
import { waitForStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { LAB_ENGINE_THRESHOLDS, startLabEngine, type LabEngine } from './helpers/labEngine.ts';

// 60 × 50 ms: the apply's wait times out after 3 s.
const THRESHOLDS = { ...LAB_ENGINE_THRESHOLDS, step_timeout_seconds: 60 };
const TEST_SYSTEM = { id: 1_000_020_001, name: 'ubuntu-2404-test-01.lab' };

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(1), { pickupMs: 50, runMs: 150, rebootMs: 500 });
let sys: ActorSystem;
let lab: LabEngine;

beforeAll(async () => {
  t = await createTestDatabase();
  lab = await startLabEngine(t.db, world, { ownerId: 'rollback-actions', thresholds: THRESHOLDS });
  sys = lab.sys;
}, 60_000);

afterAll(async () => {
  await lab?.stop();
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
