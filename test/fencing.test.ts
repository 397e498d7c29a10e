/**
 * Two replicas on one PostgreSQL (issue 11): effect claims and results are fenced by the owner's
 * epoch and lease, so a replica that lost an entry cannot run or record its effects.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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

  it('a replica frozen between its claim and the call does not call out once another replica took the entry', async () => {
    await seedErrata(t.db, ['FAKE-FENCE-3']);
    // Replica C's claim of the snapshot effect returns; then C "freezes" past its lease (its
    // monotonic clock jumps by the TTL) while B takes the entry over and runs the snapshot itself.
    const frozen = new ControlledPorts();
    let frozenOnce = false;
    let offset = 0;
    const realNow = performance.now.bind(performance);
    const clockSpy = vi.spyOn(performance, 'now').mockImplementation(() => realNow() + offset);
    let entry = 0;
    const freezeAfterClaim = new Proxy(t.db, {
      get(target, p) {
        const v = Reflect.get(target, p, target);
        if (p !== 'maybeOne' || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v;
        return async (q: { sql: string; values: readonly unknown[] }) => {
          const row = await v.call(target, q);
          // The claim of this test's entry (C also picks up entries other tests left orphaned).
          const own = entry !== 0 && String(q.values[0]).startsWith(`${entry}:`);
          if (!frozenOnce && own && q.sql.includes('INSERT INTO effects')) {
            frozenOnce = true;
            await t.db.query(
              sql.unsafe`UPDATE patch_test_queue SET lease_until = now() - interval '1 second' WHERE id = ${entry}`,
            );
            await b.host.hydrateAll();
            offset += 60_000;
          }
          return row;
        };
      },
    });
    const c = await startActorSystem({
      db: freezeAfterClaim,
      logger: silentLogger,
      ownerId: 'replica-c',
      leaseTtlMs: 60_000,
      pollMs: 50,
      ports: frozen.ports(),
    });
    try {
      entry = await c.host.create(
        {
          errataId: 'FAKE-FENCE-3',
          errataVersion: '1',
          targetOs: 'ubuntu',
          priority: 0,
          successScore: 50,
          notes: null,
          settings: FAST_SETTINGS,
        },
        { actor: 't' },
      );
      const before = c.host.fencedRejections;
      await c.host.send(
        entry,
        { type: 'START_TEST', by: 't', testSystem: { id: 1, name: 'test-ubuntu-01' } },
        { actor: 't' },
      );
      await committedStatus(b, entry, (s) => s === 'pending_approval');
      for (let i = 0; i < 200 && c.host.fencedRejections === before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(frozenOnce).toBe(true);
      expect(c.host.fencedRejections).toBe(before + 1);
      expect(frozen.has(entry, 'takeSnapshot')).toBe(false);
      expect(world.duplicates()).toEqual([]);
    } finally {
      clockSpy.mockRestore();
      await c.stop();
    }
  });
});
