/**
 * An approval is bound to what it approved (issue 12): a sync that changes the approved errata's
 * version voids the approval before any production effect — back to the approvers, notified.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startActorSystem, type ActorSystem } from '../src/machines/system.ts';
import { voidApprovalsOfChangedErrata } from '../src/scheduler/autoQueue.ts';
import { loadJournal } from '../src/persistence/sql/entries.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { ControlledPorts } from './helpers/controlledPorts.ts';
import { driveUntil } from './helpers/drive.ts';
import { FAST_SETTINGS, seedErrata } from './helpers/actors.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
const ctl = new ControlledPorts();
beforeAll(async () => {
  t = await createTestDatabase();
  sys = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'binding',
    leaseTtlMs: 60_000,
    pollMs: 60_000,
    ports: ctl.ports(),
  });
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

describe('approval bound to the errata version', () => {
  it('a sync that changes the approved errata voids the approval before promotion starts', async () => {
    await seedErrata(t.db, ['USN-9100-1']);
    await t.db.query(sql.unsafe`UPDATE errata_cache SET errata_version = '2' WHERE errata_id = 'USN-9100-1'`);
    const id = await sys.host.create(
      {
        errataId: 'USN-9100-1',
        errataVersion: '2',
        targetOs: 'ubuntu',
        priority: 0,
        successScore: 50,
        notes: null,
        settings: FAST_SETTINGS,
      },
      { actor: 'alice' },
    );
    const d = { sys, db: t.db, ctl, by: 'carol' };
    await driveUntil(d, id, (s) => s.matches('pending_approval'));
    await sys.host.send(id, { type: 'APPROVE', by: 'carol', reason: 'ok' }, { actor: 'carol' });
    // Approved: the approval notice is in flight, promotion has not started.
    expect(sys.host.snapshotOf(id)?.snapshot.value).toBe('approved');

    // The sync sees version 3.
    await t.db.query(sql.unsafe`UPDATE errata_cache SET errata_version = '3' WHERE errata_id = 'USN-9100-1'`);
    const deps = { db: t.db, logger: silentLogger, actors: sys.host, settings: async () => FAST_SETTINGS };
    expect(await voidApprovalsOfChangedErrata(deps, ['USN-9100-1'])).toBe(1);
    await driveUntil(d, id, (s) => s.matches('pending_approval'), 5);
    const ctx = sys.host.snapshotOf(id)!.snapshot.context;
    expect(ctx.approval).toBeNull();
    expect(ctx.approvalVoided?.reason).toMatch(/changed in UYUNI since it was approved \(version 2 → 3\)/);
    const journal = await loadJournal(t.db, id);
    expect(journal.map((j) => j.event_type)).toContain('ERRATA_CHANGED');
    // No production effect ever started: no promote, no plan, no wave.
    expect(ctl.has(id, 'promote') || ctl.has(id, 'planDeployment') || ctl.has(id, 'deployWave')).toBe(false);
    const prodEffects = await t.db.anyFirst(sql.type(z.object({ key: z.string() }))`
      SELECT key FROM effects WHERE queue_id = ${id} AND key LIKE ${`${id}:p%`}`);
    expect(prodEffects.filter((k) => !k.includes('notify'))).toEqual([]);
  });
});
