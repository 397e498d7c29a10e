/**
 * Lanes and singleton loops across replicas (issue 11): a role (a test lane, the sync poller, …) is
 * led by one replica at a time and passes to another when its leader goes; a lane whose system
 * cannot take a test pauses with the reason, says so once, and leaves its entry queued.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Leadership } from '../src/persistence/leadership.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { TestLanes } from '../src/scheduler/lanes.ts';
import { testSystemKnownToUyuni } from '../src/services/testSystems.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem, statusOfEntry } from './helpers/actors.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => t.drop());

describe('leadership', () => {
  it('one replica leads a role; the other takes it when the leader goes', async () => {
    const a = new Leadership({ url: t.url, logger: silentLogger, instanceId: 'a' });
    const b = new Leadership({ url: t.url, logger: silentLogger, instanceId: 'b' });
    expect(await a.leads('lane:test-ubuntu-01')).toBe(true);
    expect(await a.leads('lane:test-ubuntu-01')).toBe(true); // asking again changes nothing
    expect(await b.leads('lane:test-ubuntu-01')).toBe(false);
    expect(await b.leads('sync-poller')).toBe(true); // roles are independent
    await a.stop();
    expect(await b.leads('lane:test-ubuntu-01')).toBe(true);
    expect(b.roles().sort()).toEqual(['lane:test-ubuntu-01', 'sync-poller']);
    await b.stop();
  });
});

describe('a lane whose system cannot take a test', () => {
  it('pauses with the reason (once), and the entry stays queued', async () => {
    await setConfigValue(
      t.db,
      'test_systems',
      { ubuntu: [{ system_id: null, system_name: 'test-unknown-01' }] },
      'test',
    );
    await seedErrata(t.db, ['USN-9200-1']);
    const { sys } = await startTestSystem(t.db, { ownerId: 'lanes' });
    const id = await sys.host.create(
      {
        errataId: 'USN-9200-1',
        errataVersion: '1',
        targetOs: 'ubuntu',
        priority: 0,
        successScore: 50,
        notes: null,
        settings: FAST_SETTINGS,
      },
      { actor: 't' },
    );
    const paused: string[] = [];
    const lanes = new TestLanes({
      db: t.db,
      logger: silentLogger,
      actors: sys.host,
      pollMs: 50,
      checks: [(system) => testSystemKnownToUyuni(t.db, system)],
      onPause: async (lane, reason) => void paused.push(`${lane.system}: ${reason}`),
    });
    lanes.start();
    try {
      for (let i = 0; i < 100 && paused.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300)); // several fills: still said once
      expect(paused).toEqual([
        expect.stringMatching(/^test-unknown-01: test system test-unknown-01 is not known to UYUNI/),
      ]);
      expect(lanes.states()).toMatchObject([
        { system: 'test-unknown-01', paused: expect.stringMatching(/not known to UYUNI/), entryId: null },
      ]);
      expect(await statusOfEntry(t.db, id)).toBe('queued');

      // The sync records the system: the lane resumes and starts the test.
      await t.db.query(
        sql.unsafe`INSERT INTO uyuni_systems (system_id, name, group_name, target_os, role) VALUES (4242, 'test-unknown-01', 'test-ubuntu', 'ubuntu', 'test')`,
      );
      for (let i = 0; i < 200 && (await statusOfEntry(t.db, id)) === 'queued'; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(await statusOfEntry(t.db, id)).not.toBe('queued');
      expect(lanes.states()[0]?.paused).toBeNull();
    } finally {
      await lanes.stop();
      await sys.stop();
    }
  });
});
