/**
 * Exactly once against the database's own faults (issue 11), through the real host and PostgreSQL:
 *
 * - an effect starts only after the transition that invoked it is committed: a transition that
 *   cannot be written (jsonb refuses a NUL byte) starts nothing;
 * - a database blip in the effect ledger (claim, result) pauses the effect; it never fails the test;
 * - a write that committed but whose answer was lost is read back: the operator hears the truth.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActorSystem } from '../src/machines/system.ts';
import type { FakeWorld } from '../src/lab/fakeWorld.ts';
import type { Db } from '../src/persistence/db.ts';
import { createTestDatabase } from './helpers/db.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem, statusOfEntry, committedStatus } from './helpers/actors.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let world: FakeWorld;
/**
 * Injected faults: ledger statements that fail with a connection reset, and snapshot writes that
 * commit but whose answer is lost (the connection resets after COMMIT).
 */
const blips = { claims: 0, results: 0, lostAcks: 0 };

/** The test database with injected connection resets on the effects ledger's statements. */
function flakyLedger(db: Db): Db {
  const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  return new Proxy(db, {
    get(target, prop, receiver) {
      const real = Reflect.get(target, prop, receiver);
      if (typeof real !== 'function') return real;
      return (...args: unknown[]) => {
        const text = String((args[0] as { sql?: string } | undefined)?.sql ?? '');
        if (text.includes('INSERT INTO effects') && blips.claims > 0) {
          blips.claims--;
          return Promise.reject(reset());
        }
        if (text.includes("UPDATE effects SET status = 'succeeded'") && blips.results > 0) {
          blips.results--;
          return Promise.reject(reset());
        }
        const isSnapshotWrite = prop === 'transaction' || text.includes('WITH u AS (');
        if (isSnapshotWrite && blips.lostAcks > 0) {
          blips.lostAcks--;
          return (real.apply(target, args) as Promise<unknown>).then(() => Promise.reject(reset()));
        }
        return real.apply(target, args);
      };
    },
  });
}

beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys, world } = await startTestSystem(flakyLedger(t.db)));
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

const op = { actor: 'alice' };
async function toPendingApproval(errataId: string): Promise<number> {
  await seedErrata(t.db, [errataId]);
  const id = await sys.host.create(
    {
      errataId,
      errataVersion: '1',
      targetOs: 'ubuntu',
      priority: 0,
      successScore: 80,
      notes: null,
      settings: FAST_SETTINGS,
    },
    op,
  );
  await sys.host.send(id, { type: 'START_TEST', by: 'alice', testSystem: { id: 1, name: 'test-ubuntu-01' } }, op);
  await committedStatus(sys, id, (s) => s === 'pending_approval');
  return id;
}

describe('effects start only after their transition commits', () => {
  it('an APPROVE whose transition cannot be written is refused, and the approval notice never goes out', async () => {
    const id = await toPendingApproval('FAKE-EO-1');
    const notifiesBefore = world.count('notify');
    const refused = await sys.host
      .send(id, { type: 'APPROVE', by: 'bob', reason: 'ok \u0000 boom' }, { actor: 'bob' })
      .then(
        () => null,
        (err: { status?: number; code?: string }) => err,
      );
    expect(refused).toMatchObject({ status: 503, code: 'not_persisted' });
    await new Promise((r) => setTimeout(r, 300));
    expect(world.count('notify')).toBe(notifiesBefore);
    expect(await statusOfEntry(t.db, id)).toBe('pending_approval');
    // The entry is re-hydrated from the database on the next event and approves normally.
    await sys.host.send(id, { type: 'APPROVE', by: 'bob', reason: 'ok' }, { actor: 'bob' });
    await committedStatus(sys, id, (s) => s === 'completed');
    expect(world.count('notify')).toBe(notifiesBefore + 1);
    expect(world.duplicates()).toEqual([]);
  });
});

describe('a database blip in the effect ledger', () => {
  it('pauses the effect and retries; the test still passes, nothing runs twice', async () => {
    blips.claims = 3;
    blips.results = 2;
    const id = await toPendingApproval('FAKE-EO-2');
    expect(blips).toEqual({ claims: 0, results: 0, lostAcks: 0 });
    expect(await statusOfEntry(t.db, id)).toBe('pending_approval');
    expect(world.duplicates()).toEqual([]);
  });
});

describe('an ambiguous commit', () => {
  it('answers what happened: the APPROVE committed, so it is 200 and the entry goes on, journalled once', async () => {
    const id = await toPendingApproval('FAKE-EO-3');
    blips.lostAcks = 1;
    const res = await sys.host.send(id, { type: 'APPROVE', by: 'bob', reason: 'ok' }, { actor: 'bob' });
    expect(blips.lostAcks).toBe(0);
    expect(res.status).not.toBe('pending_approval');
    await committedStatus(sys, id, (s) => s === 'completed');
    const { loadJournal } = await import('../src/persistence/sql/entries.ts');
    const journal = await loadJournal(t.db, id);
    expect(journal.filter((j) => j.event_type === 'APPROVE')).toHaveLength(1);
    const { checkInvariants } = await import('./helpers/actors.ts');
    await checkInvariants(t.db, id);
    expect(world.duplicates()).toEqual([]);
  });
});
