/**
 * Hydration safety: an entry whose snapshot cannot be restored (unknown machine version, a state
 * that does not exist, a malformed or errored snapshot) moves to needs_attention with the reason;
 * the other actors and the daemon keep running, and an operator RETRY recovers the entry.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadJournal } from '../src/persistence/sql/entries.ts';
import { checkInvariants, FAST_SETTINGS, seedErrata, startTestSystem, committedStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

describe('hydrating bad snapshots', () => {
  it('quarantines each bad entry with its reason and keeps everything else running', async () => {
    const names = ['HYD-1', 'HYD-2', 'HYD-3', 'HYD-4', 'HYD-5'];
    await seedErrata(t.db, names);
    const first = await startTestSystem(t.db, { ownerId: 'replica-h' });
    const ids: number[] = [];
    for (const n of names)
      ids.push(
        await first.sys.host.create(
          {
            errataId: n,
            errataVersion: null,
            targetOs: 'ubuntu',
            priority: 0,
            successScore: 50,
            notes: null,
            settings: FAST_SETTINGS,
          },
          { actor: 'test' },
        ),
      );
    await first.sys.stop();

    const [versionId, stateId, garbageId, errorId, goodId] = ids as [number, number, number, number, number];
    await t.db.query(sql.unsafe`UPDATE patch_test_queue SET machine_version = '99' WHERE id = ${versionId}`);
    await t.db.query(
      sql.unsafe`UPDATE patch_test_queue SET snapshot = jsonb_set(snapshot, '{value}', '{"testing":"no_such_step"}') WHERE id = ${stateId}`,
    );
    await t.db.query(sql.unsafe`UPDATE patch_test_queue SET snapshot = '{"garbage": true}' WHERE id = ${garbageId}`);
    await t.db.query(
      sql.unsafe`UPDATE patch_test_queue SET snapshot = jsonb_set(snapshot, '{status}', '"error"') WHERE id = ${errorId}`,
    );

    const second = await startTestSystem(t.db, { ownerId: 'replica-h' });
    try {
      expect(second.sys.hydration).toEqual({ hydrated: 1, quarantined: 4 });
      const rows = await t.db.any(sql.type(
        z.object({ id: z.number(), status: z.string(), status_reason: z.string().nullable() }),
      )`
        SELECT id, status, status_reason FROM patch_test_queue WHERE id = ANY(${sql.array(ids, 'int8')}) ORDER BY id`);
      const reason = Object.fromEntries(rows.map((r) => [r.id, `${r.status}: ${r.status_reason}`]));
      expect(reason[versionId]).toMatch(/^needs_attention: machine version 99 is not known to this build/);
      expect(reason[stateId]).toMatch(/^needs_attention: snapshot state cannot be restored/);
      expect(reason[garbageId]).toMatch(/^needs_attention: snapshot is malformed/);
      expect(reason[errorId]).toMatch(/^needs_attention: snapshot has status error/);
      expect(reason[goodId]).toBe('queued: null');
      const j = await loadJournal(t.db, versionId);
      expect(j.at(-1)).toMatchObject({ event_type: 'HYDRATE_FAILED', to_state: 'needs_attention', actor: 'system' });

      // The daemon keeps working: the good entry runs, and a quarantined one recovers with RETRY.
      await second.sys.host.send(goodId, { type: 'START_TEST', by: 'op' }, { actor: 'op' });
      await second.sys.host.send(versionId, { type: 'RETRY', by: 'op' }, { actor: 'op' });
      await committedStatus(second.sys, goodId, (s) => s === 'pending_approval');
      await committedStatus(second.sys, versionId, (s) => s === 'pending_approval');
      for (const id of ids) await checkInvariants(t.db, id);

      // The periodic claim leaves this replica's live actors alone (no new epoch, no re-hydration).
      const epochs = async () =>
        t.db.anyFirst(sql.type(z.object({ e: z.number() }))`SELECT owner_epoch AS e FROM patch_test_queue ORDER BY id`);
      const before = await epochs();
      expect(await second.sys.host.hydrateAll()).toEqual({ hydrated: 0, quarantined: 0 });
      expect(await epochs()).toEqual(before);
    } finally {
      await second.sys.stop();
    }
  });
});

describe('a restart without changes', () => {
  it('writes nothing: no journal row, no revision bump', async () => {
    await seedErrata(t.db, ['QUIET-1']);
    const a = await startTestSystem(t.db, { ownerId: 'replica-q' });
    const id = await a.sys.host.create(
      {
        errataId: 'QUIET-1',
        errataVersion: null,
        targetOs: 'ubuntu',
        priority: 0,
        successScore: 50,
        notes: null,
        settings: FAST_SETTINGS,
      },
      { actor: 'test' },
    );
    await a.sys.host.send(id, { type: 'START_TEST', by: 'op' }, { actor: 'op' });
    await committedStatus(a.sys, id, (s) => s === 'pending_approval');
    await a.sys.stop();
    const before = (await loadJournal(t.db, id)).length;
    const b = await startTestSystem(t.db, { ownerId: 'replica-q' });
    await b.sys.host.flush();
    await new Promise((r) => setTimeout(r, 100));
    expect((await loadJournal(t.db, id)).length).toBe(before);
    await b.sys.stop();
  });
});
