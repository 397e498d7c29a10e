/**
 * The operator API over the real actor host and PostgreSQL: every endpoint, every 4xx path,
 * idempotent retries, concurrent decisions.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../src/http/app.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { withTestSystemLock } from '../src/persistence/sql/lanes.ts';
import { revokeToken } from '../src/persistence/sql/tokens.ts';
import { type Role } from '../src/services/tokens.ts';
import {
  checkInvariants,
  FAST_SETTINGS,
  seedErrata,
  startTestSystem,
  statusOfEntry,
  waitForStatus,
} from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;
const tokens = {} as Record<Role, string>;

beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys } = await startTestSystem(t.db));
  const deps = baseDeps(t.db);
  app = createApp(deps, [
    queueRoutes({
      ...deps,
      actors: sys.host,
      clock: sys.clock,
      settings: async () => FAST_SETTINGS,
      testEngine: { available: true, reason: null },
    }),
  ]);
  for (const role of ['viewer', 'operator', 'approver', 'admin'] as Role[]) {
    const g = await issueToken(t.db, `${role}-user`, role);
    tokens[role] = g.token;
  }
  await seedErrata(
    t.db,
    Array.from({ length: 12 }, (_, i) => `USN-${7000 + i}-1`),
  );
  await seedErrata(t.db, ['RHSA-2026:0001'], 'rhel');
  await seedErrata(t.db, ['USN-7030-1', 'FAKE-7031-SLOW', 'USN-7032-1', 'FAKE-7033-SLOW', 'USN-7034-1']);
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

function call(
  method: string,
  path: string,
  opts: { role?: Role; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.role) headers.authorization = `Bearer ${tokens[opts.role]}`;
  if (opts.body !== undefined || opts.raw !== undefined) headers['content-type'] ??= 'application/json';
  return app.request(`/api/v1${path}`, {
    method,
    headers,
    ...(opts.raw !== undefined
      ? { body: opts.raw }
      : opts.body !== undefined
        ? { body: JSON.stringify(opts.body) }
        : {}),
  });
}
async function json(res: Response): Promise<any> {
  return res.json();
}
async function queue(errataId: string, role: Role = 'operator'): Promise<number> {
  const res = await call('POST', '/queue', { role, body: { errata_id: errataId } });
  expect(res.status).toBe(201);
  return (await json(res)).results[0].id;
}
async function toPending(errataId: string): Promise<number> {
  const id = await queue(errataId);
  const res = await call('POST', '/tests/start', {
    role: 'operator',
    body: { queue_id: id, test_system: { id: 1, name: 'test-ubuntu-01' } },
  });
  expect(res.status).toBe(202);
  await waitForStatus(t.db, id, (s) => s === 'pending_approval');
  return id;
}

describe('authentication and roles', () => {
  it('401 without a token, with a malformed one, with an unknown or revoked one', async () => {
    expect((await call('GET', '/queue')).status).toBe(401);
    expect((await call('GET', '/queue', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await call('GET', '/queue', { headers: { authorization: `Bearer spm_${'A'.repeat(43)}` } })).status).toBe(
      401,
    );
    const g = await issueToken(t.db, 'temp', 'admin');
    const row = g.row;
    expect((await call('GET', '/queue', { headers: { authorization: `Bearer ${g.token}` } })).status).toBe(200);
    await revokeToken(t.db, String(row.id));
    const res = await call('GET', '/queue', { headers: { authorization: `Bearer ${g.token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/Bearer/);
    const denied = await t.db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM audit_log WHERE outcome = 'denied'`,
    );
    expect(denied).toBeGreaterThanOrEqual(4);
  });

  it('a viewer reads but cannot change anything; an operator cannot approve', async () => {
    expect((await call('GET', '/queue', { role: 'viewer' })).status).toBe(200);
    const res = await call('POST', '/queue', { role: 'viewer', body: { errata_id: 'USN-7000-1' } });
    expect(res.status).toBe(403);
    expect(await json(res)).toMatchObject({
      error: { code: 'forbidden', details: { required_role: 'operator', role: 'viewer' } },
    });
    expect((await call('POST', '/approvals/1/approve', { role: 'operator', body: {} })).status).toBe(403);
  });

  it('health needs no token', async () => {
    expect((await call('GET', '/health')).status).toBe(200);
  });
});

describe('queue', () => {
  it('rejects bad bodies with a clear 4xx and changes nothing', async () => {
    const before = await t.db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_test_queue`,
    );
    const bad = await call('POST', '/queue', { role: 'operator', raw: '{"errata_id": ' });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.code).toBe('invalid_json');
    expect((await call('POST', '/queue', { role: 'operator', body: { errata_id: 42 } })).status).toBe(400);
    expect((await call('POST', '/queue', { role: 'operator', body: { errata_id: 'x', extra: 1 } })).status).toBe(400);
    expect(
      (
        await call('POST', '/queue', {
          role: 'operator',
          raw: 'errata_id=x',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).status,
    ).toBe(415);
    const unknown = await call('POST', '/queue', { role: 'operator', body: { errata_id: 'USN-0000-0' } });
    expect(unknown.status).toBe(409);
    expect((await json(unknown)).results[0].error.code).toBe('unknown_errata');
    expect(
      await t.db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_test_queue`),
    ).toBe(before);
  });

  it('queues one or many errata, refuses a second live entry, lists, filters and counts', async () => {
    const res = await call('POST', '/queue', {
      role: 'operator',
      body: { errata_ids: ['USN-7001-1', 'RHSA-2026:0001'], priority: 5 },
    });
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.queued).toBe(2);
    const again = await json(await call('POST', '/queue', { role: 'operator', body: { errata_id: 'USN-7001-1' } }));
    expect(again.results[0].error.code).toBe('already_queued');
    const rhel = await json(await call('GET', '/queue?target_os=rhel&status=queued', { role: 'viewer' }));
    expect(rhel.items.map((i: { errata_id: string }) => i.errata_id)).toEqual(['RHSA-2026:0001']);
    expect(rhel.items[0].queued_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await call('GET', '/queue?status=bogus', { role: 'viewer' })).status).toBe(400);
    expect((await call('GET', '/queue?limit=0', { role: 'viewer' })).status).toBe(400);
    const stats = await json(await call('GET', '/queue/stats', { role: 'viewer' }));
    expect(stats.by_os.rhel).toBe(1);
    expect(stats.by_status.queued).toBeGreaterThanOrEqual(2);
  });

  it('shows an entry with its state and allowed events; 400 for a bad id, 404 for an unknown one', async () => {
    const id = await queue('USN-7002-1');
    const res = await json(await call('GET', `/queue/${id}`, { role: 'viewer' }));
    expect(res).toMatchObject({
      state: 'queued',
      allowed_events: ['START_TEST', 'REMOVE'],
      errata: { errata_id: 'USN-7002-1' },
    });
    expect((await call('GET', '/queue/abc', { role: 'viewer' })).status).toBe(400);
    expect((await call('GET', '/queue/999999', { role: 'viewer' })).status).toBe(404);
  });

  it('PATCH sets priority_override and notes', async () => {
    const id = await queue('USN-7003-1');
    const res = await call('PATCH', `/queue/${id}`, {
      role: 'operator',
      body: { priority_override: 9, notes: 'vendor says urgent' },
    });
    expect(res.status).toBe(200);
    expect((await json(res)).entry).toMatchObject({
      priority_override: 9,
      effective_priority: 9,
      notes: 'vendor says urgent',
    });
    expect((await call('PATCH', `/queue/${id}`, { role: 'operator', body: {} })).status).toBe(400);
    expect((await call('PATCH', '/queue/999999', { role: 'operator', body: { notes: 'x' } })).status).toBe(404);
  });

  it('DELETE removes only while queued, then answers 409', async () => {
    const id = await queue('USN-7004-1');
    const res = await call('DELETE', `/queue/${id}`, { role: 'operator' });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: 'removed' });
    const again = await call('DELETE', `/queue/${id}`, { role: 'operator' });
    expect(again.status).toBe(409);
    expect((await json(again)).error).toMatchObject({ code: 'invalid_transition', details: { state: 'removed' } });
  });
});

describe('tests and approvals', () => {
  it('start → pending approval with hours pending; history and inspection tell the path', async () => {
    const id = await toPending('USN-7005-1');
    const pending = await json(await call('GET', '/approvals/pending', { role: 'viewer' }));
    const item = pending.items.find((i: { id: number }) => i.id === id);
    expect(item).toMatchObject({ test_result: 'passed', hours_pending: expect.any(Number) });
    const entry = await json(await call('GET', `/queue/${id}`, { role: 'viewer' }));
    expect(entry.allowed_events).toEqual(['APPROVE', 'REJECT', 'SNOOZE', 'ROLLBACK_TEST']);
    const testId = entry.entry.test_id;
    const test = await json(await call('GET', `/tests/${testId}`, { role: 'viewer' }));
    expect(test.test).toMatchObject({ result: 'passed', queue_id: id, test_system_name: 'test-ubuntu-01' });
    expect((await call('GET', `/tests/${testId}/phases`, { role: 'viewer' })).status).toBe(200);
    const history = await json(await call('GET', `/queue/${id}/history`, { role: 'viewer' }));
    expect(history.transitions[0]).toMatchObject({ seq: 1, event_type: 'CREATE', actor: 'operator-user' });
    expect(history.transitions.at(-1)).toMatchObject({ to_state: 'pending_approval' });
    const inspect = await json(await call('GET', `/queue/${id}/inspect`, { role: 'viewer' }));
    expect(inspect).toMatchObject({
      state: 'pending_approval',
      live: true,
      accepted_events: ['APPROVE', 'REJECT', 'SNOOZE', 'ROLLBACK_TEST'],
    });
    expect(inspect.machine.nodes.map((n: { id: string }) => n.id)).toEqual(
      expect.arrayContaining(['pending_approval', 'testing.apply', 'prod_pending.deploying']),
    );
    expect(inspect.path).toContain('testing.validate');
  });

  it('reject and snooze need a reason; snooze needs a future until or days', async () => {
    const id = await toPending('USN-7006-1');
    expect((await call('POST', `/approvals/${id}/reject`, { role: 'approver', body: {} })).status).toBe(400);
    expect((await call('POST', `/approvals/${id}/reject`, { role: 'approver', body: { reason: '   ' } })).status).toBe(
      400,
    );
    expect(
      (await call('POST', `/approvals/${id}/snooze`, { role: 'approver', body: { reason: 'later' } })).status,
    ).toBe(400);
    expect(
      (
        await call('POST', `/approvals/${id}/snooze`, {
          role: 'approver',
          body: { reason: 'later', until: '2001-01-01T00:00:00Z' },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call('POST', `/approvals/${id}/snooze`, {
          role: 'approver',
          body: { reason: 'later', days: 2, until: '2099-01-01T00:00:00Z' },
        })
      ).status,
    ).toBe(400);
    const ok = await call('POST', `/approvals/${id}/snooze`, {
      role: 'approver',
      body: { reason: 'waiting for the change board', days: 3 },
    });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ status: 'snoozed' });
    const row = await t.db.one(sql.type(
      z.object({ action: z.string(), approved_by: z.string(), user_agent: z.string().nullable() }),
    )`
      SELECT action, approved_by, user_agent FROM patch_approvals WHERE queue_id = ${id}`);
    expect(row).toMatchObject({ action: 'snoozed', approved_by: 'approver-user' });
    expect((await call('POST', '/approvals/999999/approve', { role: 'approver', body: {} })).status).toBe(404);
  });

  it('concurrent APPROVE and REJECT on one entry: exactly one wins, the other gets 409', async () => {
    const id = await toPending('USN-7007-1');
    const [a, r] = await Promise.all([
      call('POST', `/approvals/${id}/approve`, { role: 'approver', body: { reason: 'ok' } }),
      call('POST', `/approvals/${id}/reject`, { role: 'approver', body: { reason: 'no' } }),
    ]);
    expect([a.status, r.status].sort()).toEqual([200, 409]);
    const decisions = await t.db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${id}`,
    );
    expect(decisions).toBe(1);
    await waitForStatus(t.db, id, (s) => ['completed', 'rejected'].includes(s));
    await checkInvariants(t.db, id);
  });

  it('Idempotency-Key: a retried approve returns the first answer without a second transition', async () => {
    const id = await toPending('USN-7008-1');
    const first = await call('POST', `/approvals/${id}/approve`, {
      role: 'approver',
      body: { reason: 'ok' },
      headers: { 'idempotency-key': `k-${id}` },
    });
    expect(first.status).toBe(200);
    const body1 = await json(first);
    const second = await call('POST', `/approvals/${id}/approve`, {
      role: 'approver',
      body: { reason: 'ok' },
      headers: { 'idempotency-key': `k-${id}` },
    });
    expect(second.status).toBe(200);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await json(second)).toEqual(body1);
    const other = await call('POST', `/approvals/${id}/approve`, {
      role: 'approver',
      body: { reason: 'different' },
      headers: { 'idempotency-key': `k-${id}` },
    });
    expect(other.status).toBe(422);
    const approvals = await t.db.oneFirst(
      sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${id}`,
    );
    expect(approvals).toBe(1);
  });

  it('batch decisions give a per-item result', async () => {
    const a = await toPending('USN-7009-1');
    const b = await toPending('USN-7010-1');
    const res = await call('POST', '/approvals/batch', {
      role: 'approver',
      body: {
        items: [
          { id: a, action: 'approve' },
          { id: b, action: 'reject', reason: 'breaks the legacy app' },
          { id: 999999, action: 'approve' },
          { id: a, action: 'reject', reason: 'too late' },
        ],
      },
    });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ succeeded: 2, failed: 2 });
    expect(body.results.map((r: { ok: boolean; error?: { code: string } }) => r.ok || r.error?.code)).toEqual([
      true,
      true,
      'not_found',
      'invalid_transition',
    ]);
    expect((await call('POST', '/approvals/batch', { role: 'approver', body: { items: [] } })).status).toBe(400);
  });

  it('abort during a test fails it and rolls the test system back; 503 when no test engine', async () => {
    const id = await queue('USN-7011-1');
    await t.db.query(sql.unsafe`UPDATE errata_cache SET errata_id = errata_id WHERE errata_id = 'USN-7011-1'`);
    const started = await json(await call('POST', '/tests/start', { role: 'operator', body: { queue_id: id } }));
    const abort = await call('POST', `/tests/${started.test_id}/abort`, {
      role: 'operator',
      body: { reason: 'wrong window' },
    });
    // The fake test may already have passed: then ABORT is refused with 409 and the accepted events.
    expect([200, 409]).toContain(abort.status);
    if (abort.status === 200) await waitForStatus(t.db, id, (s) => s === 'rolled_back');
    const deps = baseDeps(t.db);
    const noEngine = createApp(deps, [
      queueRoutes({
        ...deps,
        actors: sys.host,
        clock: sys.clock,
        settings: async () => FAST_SETTINGS,
        testEngine: { available: false, reason: 'not configured' },
      }),
    ]);
    const res = await noEngine.request('/api/v1/tests/start', {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.operator}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(503);
  });
});

describe('rolling a test system back', () => {
  it('is refused (409 test_system_busy, naming the holder) while another entry tests on that system, and allowed once it ended', async () => {
    const a = await toPending('USN-7030-1');
    const testA = await t.db.oneFirst(
      sql.type(z.object({ id: z.number() }))`SELECT id FROM patch_tests WHERE queue_id = ${a}`,
    );
    // A waits for its approvers; the next entry's test has the system now (each step takes 2 s).
    const b = await queue('FAKE-7031-SLOW');
    const started = await call('POST', '/tests/start', {
      role: 'operator',
      body: { queue_id: b, test_system: { id: 1, name: 'test-ubuntu-01' } },
    });
    expect(started.status).toBe(202);
    const busy = await call('POST', `/tests/${testA}/rollback`, {
      role: 'operator',
      body: { reason: 'second thoughts' },
    });
    expect(busy.status).toBe(409);
    expect((await json(busy)).error).toMatchObject({
      code: 'test_system_busy',
      details: { test_system: 'test-ubuntu-01', held_by: b },
    });
    expect(await statusOfEntry(t.db, a)).toBe('pending_approval');
    await waitForStatus(t.db, b, (s) => s === 'pending_approval', 60_000);
    const ok = await call('POST', `/tests/${testA}/rollback`, {
      role: 'operator',
      body: { reason: 'second thoughts' },
    });
    expect(ok.status, JSON.stringify(await ok.clone().json())).toBe(200);
    // The rollback holds the system until it ends (a start there meanwhile is refused).
    await waitForStatus(t.db, a, (s) => s === 'rolled_back' || s === 'needs_attention', 60_000);
  }, 90_000);
  it('the check and the rollback are one step: a test started on the system while the rollback waits for its lock wins, and the rollback is refused', async () => {
    const a = await toPending('USN-7032-1');
    const testA = await t.db.oneFirst(
      sql.type(z.object({ id: z.number() }))`SELECT id FROM patch_tests WHERE queue_id = ${a}`,
    );
    const b = await queue('FAKE-7033-SLOW');
    // A lane holds the system's lock while it starts b there: the rollback waits for it, then sees b.
    const pending = await withTestSystemLock(t.db, 'test-ubuntu-01', async () => {
      let settled = false;
      const p = Promise.resolve(
        call('POST', `/tests/${testA}/rollback`, { role: 'operator', body: { reason: 'second thoughts' } }),
      );
      void p.then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(settled, 'the rollback waits for the lock').toBe(false);
      await sys.host.send(
        b,
        { type: 'START_TEST', by: 'scheduler', testSystem: { id: 1, name: 'test-ubuntu-01' } },
        { actor: 'scheduler' },
      );
      return { p }; // not awaited here: the rollback needs the lock this holds
    });
    const rollback = await pending.p;
    expect(rollback.status).toBe(409);
    expect((await json(rollback)).error).toMatchObject({ code: 'test_system_busy', details: { held_by: b } });
    expect(await statusOfEntry(t.db, a)).toBe('pending_approval');
    // An operator's start of another test there is refused the same way.
    const c = await queue('USN-7034-1');
    const refused = await call('POST', '/tests/start', {
      role: 'operator',
      body: { queue_id: c, test_system: { id: 1, name: 'test-ubuntu-01' } },
    });
    expect(refused.status).toBe(409);
    expect((await json(refused)).error).toMatchObject({ code: 'test_system_busy', details: { held_by: b } });
    expect(await statusOfEntry(t.db, c)).toBe('queued');
    await waitForStatus(t.db, b, (s) => s === 'pending_approval', 60_000);
  }, 90_000);
});
