/**
 * Operator events at any replica (issue 11): an event for an entry another replica owns is
 * forwarded through the operator inbox and answered after the owner committed it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActorSystem, type ActorSystem } from '../src/machines/system.ts';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { loadJournal } from '../src/persistence/sql/entries.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { FAST_SETTINGS, seedErrata, statusOfEntry, committedStatus } from './helpers/actors.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let owner: ActorSystem;
let other: ActorSystem;
const world = new FakeWorld();
beforeAll(async () => {
  t = await createTestDatabase();
  owner = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'owner',
    leaseTtlMs: 30_000,
    pollMs: 50,
    ports: world.ports(),
    listenUrl: t.url,
  });
  other = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'other',
    leaseTtlMs: 30_000,
    pollMs: 50,
    ports: world.ports(),
    listenUrl: t.url,
  });
});
afterAll(async () => {
  await owner.stop();
  await other.stop();
  await t.drop();
});

async function pendingApproval(errataId: string): Promise<number> {
  await seedErrata(t.db, [errataId]);
  const id = await owner.host.create(
    {
      errataId,
      errataVersion: '1',
      targetOs: 'ubuntu',
      priority: 0,
      successScore: 50,
      notes: null,
      settings: FAST_SETTINGS,
    },
    { actor: 'alice' },
  );
  await owner.host.send(
    id,
    { type: 'START_TEST', by: 'alice', testSystem: { id: 1, name: 'test-ubuntu-01' } },
    { actor: 'alice' },
  );
  await committedStatus(owner, id, (s) => s === 'pending_approval');
  return id;
}

describe('operator inbox', () => {
  it('an APPROVE sent to a non-owner replica is applied by the owner and answered after its commit', async () => {
    const id = await pendingApproval('FAKE-INBOX-1');
    const res = await other.host.send(
      id,
      { type: 'APPROVE', by: 'bob', reason: 'ok' },
      { actor: 'bob', requestId: 'r-1' },
    );
    expect(res.state).not.toBe('pending_approval');
    // Answered after the commit: the journal already has it, recorded by the owner for bob.
    const approve = (await loadJournal(t.db, id)).filter((j) => j.event_type === 'APPROVE');
    expect(approve).toHaveLength(1);
    expect(approve[0]).toMatchObject({ actor: 'bob', request_id: 'r-1' });
    expect(other.host.snapshotOf(id)).toBeUndefined(); // the entry never moved
    expect(other.inbox.forwarded).toBe(1);
    expect(owner.inbox.delivered).toBe(1);
    await committedStatus(owner, id, (s) => s === 'completed');
  });

  it('the owner’s refusal comes back as it is (409 with the accepted events)', async () => {
    const id = await pendingApproval('FAKE-INBOX-2');
    const err = await other.host.send(id, { type: 'START_DEPLOYMENT', by: 'bob' }, { actor: 'bob' }).then(
      () => null,
      (e: { status?: number; code?: string; details?: { accepted_events?: string[] } }) => e,
    );
    expect(err).toMatchObject({ status: 409, code: 'invalid_transition' });
    expect(err?.details?.accepted_events).toContain('APPROVE');
    expect(await statusOfEntry(t.db, id)).toBe('pending_approval');
  });
});
