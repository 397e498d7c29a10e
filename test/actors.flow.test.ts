import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ActorSystem } from '../src/machines/system.ts';
import type { FakeWorld } from '../src/lab/fakeWorld.ts';
import { loadJournal } from '../src/persistence/sql/entries.ts';
import { createTestDatabase } from './helpers/db.ts';
import { checkInvariants, FAST_SETTINGS, seedErrata, startTestSystem, committedStatus } from './helpers/actors.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let world: FakeWorld;
beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys, world } = await startTestSystem(t.db));
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

const op = { actor: 'alice', ip: '10.0.0.1', userAgent: 'vitest', requestId: 'req-1' };

async function newEntry(errataId: string) {
  await seedErrata(t.db, [errataId]);
  return sys.host.create(
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
}

describe('a patch entry through the real host', () => {
  it('goes queued → testing → passed → pending_approval → approved → … → completed', async () => {
    const id = await newEntry('FAKE-1001');
    await sys.host.send(id, { type: 'START_TEST', by: 'alice', testSystem: { id: 1, name: 'test-ubuntu-01' } }, op);
    await committedStatus(sys, id, (s) => s === 'pending_approval');
    const res = await sys.host.send(id, { type: 'APPROVE', by: 'bob', reason: 'looks good' }, { actor: 'bob' });
    expect(['approved', 'promoting', 'prod_pending', 'prod_applied', 'completed']).toContain(res.status);
    await committedStatus(sys, id, (s) => s === 'completed');
    await checkInvariants(t.db, id);
    const journal = await loadJournal(t.db, id);
    expect(journal.map((j) => j.to_state)).toEqual([
      'queued',
      'testing.snapshot',
      'testing.baseline',
      'testing.apply',
      'testing.await_action',
      'testing.stabilize',
      'testing.check_reboot',
      'testing.validate',
      'passed',
      'pending_approval',
      'approved',
      'promoting',
      'prod_pending.planning',
      'prod_pending.awaiting_window',
      'prod_pending.deploying',
      'prod_pending.deploying',
      'prod_applied',
      'completed',
    ]);
    expect(journal[1]).toMatchObject({
      event_type: 'START_TEST',
      actor: 'alice',
      ip_address: '10.0.0.1',
      user_agent: 'vitest',
    });
    const approval = await t.db.one(sql.type(
      z.object({ action: z.string(), approved_by: z.string(), reason: z.string().nullable() }),
    )`
      SELECT action, approved_by, reason FROM patch_approvals WHERE queue_id = ${id}`);
    expect(approval).toEqual({ action: 'approved', approved_by: 'bob', reason: 'looks good' });
    expect(world.duplicates()).toEqual([]);
    expect(sys.host.snapshotOf(id)).toBeUndefined(); // final actors leave memory
  });

  it('refuses an event the state does not accept with the state and the accepted events', async () => {
    const id = await newEntry('FAKE-1002');
    await expect(sys.host.send(id, { type: 'APPROVE', by: 'bob' }, op)).rejects.toMatchObject({
      status: 409,
      code: 'invalid_transition',
      details: { state: 'queued', accepted_events: ['START_TEST', 'REMOVE'] },
    });
  });

  it('a failing validation rolls the test system back (package level without reboot)', async () => {
    const id = await newEntry('FAKE-1003-VALFAIL');
    await sys.host.send(id, { type: 'START_TEST', by: 'alice' }, op);
    await committedStatus(sys, id, (s) => s === 'rolled_back');
    const test = await t.db.one(sql.type(
      z.object({ result: z.string(), rollback_type: z.string().nullable(), failure_reason: z.string().nullable() }),
    )`
      SELECT result, rollback_type, failure_reason FROM patch_tests WHERE queue_id = ${id}`);
    expect(test).toMatchObject({ result: 'failed', rollback_type: 'package' });
    expect(test.failure_reason).toMatch(/nginx/);
    await checkInvariants(t.db, id);
  });

  it('a kernel errata reboots and passes; a host that never returns ends in needs_attention after the rollback fails', async () => {
    const ok = await newEntry('FAKE-1004-REBOOT');
    const lost = await newEntry('FAKE-1005-NORETURN-RBFAIL');
    await sys.host.send(ok, { type: 'START_TEST', by: 'alice' }, op);
    await sys.host.send(lost, { type: 'START_TEST', by: 'alice' }, op);
    await committedStatus(sys, ok, (s) => s === 'pending_approval');
    const states = (await loadJournal(t.db, ok)).map((j) => j.to_state);
    expect(states).toEqual(
      expect.arrayContaining([
        'needs_reboot',
        'rebooting.awaiting_host',
        'rebooting.settling',
        'testing.validate',
        'passed',
      ]),
    );
    await committedStatus(sys, lost, (s) => s === 'needs_attention');
    const reasons = (await loadJournal(t.db, lost)).map((j) => `${j.event_type}→${j.to_state}`);
    expect(reasons).toEqual(
      expect.arrayContaining(['TIMER→failed', 'xstate.error.actor.rollbackTest→needs_attention']),
    );
  });

  it('transient failures go through pending_retry and come back to the step', async () => {
    const id = await newEntry('FAKE-1006-FLAKY');
    await sys.host.send(id, { type: 'START_TEST', by: 'alice' }, op);
    await committedStatus(sys, id, (s) => s === 'pending_approval');
    const states = (await loadJournal(t.db, id)).map((j) => j.to_state);
    expect(states.filter((s) => s === 'pending_retry').length).toBeGreaterThanOrEqual(6);
    expect(world.duplicates()).toEqual([]);
  });

  it('snooze returns to pending_approval through passed (re-notified) when the timer fires', async () => {
    const id = await newEntry('FAKE-1007');
    await sys.host.send(id, { type: 'START_TEST', by: 'alice' }, op);
    await committedStatus(sys, id, (s) => s === 'pending_approval');
    const until = sys.clock.now() + 300;
    await sys.host.send(id, { type: 'SNOOZE', by: 'bob', reason: 'wait for vendor note', until }, op);
    const timer = await t.db.one(sql.type(z.object({ name: z.string(), fire_at: z.number() }))`
      SELECT name, (extract(epoch FROM fire_at) * 1000)::float8 AS fire_at FROM timers WHERE queue_id = ${id}`);
    expect(timer).toEqual({ name: 'snooze', fire_at: until });
    await committedStatus(sys, id, (s) => s === 'pending_approval');
    const journal = await loadJournal(t.db, id);
    const fired = journal.find((j) => j.event_type === 'TIMER' && j.from_state === 'snoozed');
    expect(fired).toMatchObject({ actor: 'scheduler', from_state: 'snoozed', to_state: 'passed' });
    expect(world.count('notify')).toBeGreaterThanOrEqual(2);
    await checkInvariants(t.db, id);
  });

  it('a production wave that halts needs attention; FORCE_ROLLBACK rolls back production', async () => {
    const id = await newEntry('FAKE-1008-HALT');
    await sys.host.send(id, { type: 'START_TEST', by: 'alice' }, op);
    await committedStatus(sys, id, (s) => s === 'pending_approval');
    await sys.host.send(id, { type: 'APPROVE', by: 'bob' }, op);
    await committedStatus(sys, id, (s) => s === 'needs_attention');
    await sys.host.send(
      id,
      { type: 'FORCE_ROLLBACK', by: 'carol', reason: 'wave 0 broke nginx', rollbackType: 'system', systems: [7] },
      op,
    );
    await committedStatus(sys, id, (s) => s === 'rolled_back');
    const journal = await loadJournal(t.db, id);
    expect(journal.map((j) => j.to_state)).toEqual(expect.arrayContaining(['prod_rollback', 'rolled_back']));
    await checkInvariants(t.db, id);
  });
});
