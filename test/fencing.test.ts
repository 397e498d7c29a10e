/**
 * Two replicas on one PostgreSQL (issue 11): effect claims and results are fenced by the owner's
 * epoch and lease, so a replica that lost an entry cannot run or record its effects.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActorSystem, type ActorSystem } from '../src/machines/system.ts';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { ControlledPorts } from './helpers/controlledPorts.ts';
import { FAST_SETTINGS, seedErrata, committedStatus } from './helpers/actors.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let a: ActorSystem;
let b: ActorSystem;
const held = new ControlledPorts();
const world = new FakeWorld();
beforeAll(async () => {
  t = await createTestDatabase();
  a = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'replica-a',
    leaseTtlMs: 60_000,
    pollMs: 50,
    ports: held.ports(),
  });
  b = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'replica-b',
    leaseTtlMs: 60_000,
    pollMs: 50,
    ports: world.ports(),
  });
});
afterAll(async () => {
  await a.stop();
  await b.stop();
  await t.drop();
});

describe('effect fencing', () => {
  it('a replica that lost the entry while its effect ran cannot record it; the new owner runs the entry on', async () => {
    await seedErrata(t.db, ['FAKE-FENCE-1']);
    const id = await a.host.create(
      {
        errataId: 'FAKE-FENCE-1',
        errataVersion: '1',
        targetOs: 'ubuntu',
        priority: 0,
        successScore: 50,
        notes: null,
        settings: FAST_SETTINGS,
      },
      { actor: 't' },
    );
    await a.host.send(
      id,
      { type: 'START_TEST', by: 't', testSystem: { id: 1, name: 'test-ubuntu-01' } },
      { actor: 't' },
    );
    for (let i = 0; i < 200 && !held.has(id, 'takeSnapshot'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(held.has(id, 'takeSnapshot')).toBe(true);

    // Replica A stalls past its lease; B claims the entry (new epoch) and resumes it.
    await t.db.query(
      sql.unsafe`UPDATE patch_test_queue SET lease_until = now() - interval '1 second' WHERE id = ${id}`,
    );
    await b.host.hydrateAll();
    expect(b.host.snapshotOf(id)).toBeDefined();

    // A's snapshot call now returns: its result is refused by the fence and A lets the entry go.
    await held.settle(id, 'takeSnapshot', { output: { snapshotId: 'from-a' } });
    for (let i = 0; i < 200 && a.host.snapshotOf(id) !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
    expect(a.host.snapshotOf(id)).toBeUndefined();
    expect(a.host.fencedRejections).toBeGreaterThanOrEqual(1);

    await committedStatus(b, id, (s) => s === 'pending_approval');
    const owners = await t.db.anyFirst(sql.type(z.object({ owner_id: z.string().nullable() }))`
      SELECT owner_id FROM effects WHERE queue_id = ${id} ORDER BY key`);
    expect(new Set(owners)).toEqual(new Set(['replica-b']));
    expect(world.duplicates()).toEqual([]);
  });

  it('a replica whose lease expired claims no new effect', async () => {
    await seedErrata(t.db, ['FAKE-FENCE-2']);
    const id = await a.host.create(
      {
        errataId: 'FAKE-FENCE-2',
        errataVersion: '1',
        targetOs: 'ubuntu',
        priority: 0,
        successScore: 50,
        notes: null,
        settings: FAST_SETTINGS,
      },
      { actor: 't' },
    );
    await t.db.query(
      sql.unsafe`UPDATE patch_test_queue SET lease_until = now() - interval '1 second' WHERE id = ${id}`,
    );
    const before = a.host.fencedRejections;
    await a.host.send(
      id,
      { type: 'START_TEST', by: 't', testSystem: { id: 1, name: 'test-ubuntu-01' } },
      { actor: 't' },
    );
    for (let i = 0; i < 200 && a.host.fencedRejections === before; i++) await new Promise((r) => setTimeout(r, 10));
    expect(a.host.fencedRejections).toBe(before + 1);
    expect(held.has(id, 'takeSnapshot')).toBe(false);
    const claimed = await t.db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM effects WHERE queue_id = ${id}`,
    );
    expect(claimed).toBe(0);
  });
});
