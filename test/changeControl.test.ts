/**
 * The change-control gate over the real actor host and PostgreSQL (issue 12): four eyes with one
 * identity per person (two tokens of one person, the proxy sign-in), two distinct approvers for
 * Critical, production-affecting operator actions that need the approver role, the MARK_FAILED
 * rule, Idempotency-Key on POST /queue and POST /rollback (executed once, first answer replayed,
 * one audit row per request), the audit rows written with the change, and GET /audit.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../src/http/app.ts';
import { internalAuthHeaders } from '../src/http/auth.ts';
import { deploymentRoutes } from '../src/http/routes/deployments.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { type Role } from '../src/services/tokens.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem, statusOfEntry, waitForStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { issueToken } from './helpers/tokens.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;
/** Tokens by name; `olga` has two (operator and approver) acting as one person. */
const tok: Record<string, string> = {};
const n = z.object({ n: z.number() });

async function token(name: string, role: Role, person?: string) {
  const g = await issueToken(t.db, name, role, person ? { person } : {});
  tok[name] = g.token;
}

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
    deploymentRoutes({ ...deps, actors: sys.host }),
  ]);
  await token('olga-operator', 'operator', 'olga');
  await token('olga-approver', 'approver', 'olga');
  await token('alice', 'approver');
  await token('bob', 'approver');
  await token('oscar', 'operator');
  await token('vera', 'viewer');
  await token('root', 'admin');
  await seedErrata(t.db, [
    'USN-8100-1',
    'USN-8101-1',
    'USN-8102-1',
    'USN-8103-1',
    'USN-8104-1',
    'FAKE-8105-HALT',
    'FAKE-8106-HALT',
    'FAKE-8107-INCONCL',
    'USN-8108-1',
  ]);
  await t.db.query(sql.unsafe`UPDATE errata_cache SET severity = 'Critical' WHERE errata_id = 'USN-8101-1'`);
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

function call(
  method: string,
  path: string,
  as: string | Record<string, string>,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const auth = typeof as === 'string' ? { authorization: `Bearer ${tok[as]}` } : as;
  return app.request(`/api/v1${path}`, {
    method,
    headers: { ...auth, ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}
const json = (res: Response): Promise<any> => res.json();

/** Queued by olga (operator token), tested by olga: pending approval. */
async function pendingBy(errataId: string, queuer = 'olga-operator'): Promise<number> {
  const q = await call('POST', '/queue', queuer, { errata_id: errataId });
  expect(q.status).toBe(201);
  const id = (await json(q)).results[0].id as number;
  const s = await call('POST', '/tests/start', queuer, {
    queue_id: id,
    test_system: { id: 1, name: 'test-ubuntu-01' },
  });
  expect(s.status).toBe(202);
  await waitForStatus(t.db, id, (st) => st === 'pending_approval');
  return id;
}
const revision = (id: number) =>
  t.db.oneFirst(sql.type(z.object({ revision: z.number() }))`SELECT revision FROM patch_test_queue WHERE id = ${id}`);
const approvalRows = (id: number) =>
  t.db.oneFirst(sql.type(n)`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${id}`);
const auditOf = (requestId: string) =>
  t.db.any(sql.type(
    z.object({
      actor: z.string(),
      action: z.string(),
      outcome: z.string(),
      status_code: z.number().nullable(),
      target_type: z.string().nullable(),
      target_id: z.string().nullable(),
      details: z.any(),
    }),
  )`
    SELECT actor, action, outcome, status_code, target_type, target_id, details FROM audit_log WHERE request_id = ${requestId} ORDER BY seq`);

describe('four eyes', () => {
  it('self-approval is 403 self_approval and changes nothing, whichever token or sign-in the person uses', async () => {
    const id = await pendingBy('USN-8100-1');
    const before = await revision(id);
    const attempts = [
      await call(
        'POST',
        `/approvals/${id}/approve`,
        'olga-approver',
        { reason: 'looks fine' },
        { 'x-request-id': 'self-1' },
      ),
      await call(
        'POST',
        `/approvals/${id}/approve`,
        internalAuthHeaders('olga', 'approver'),
        {},
        { 'x-request-id': 'self-2' },
      ),
      await call(
        'POST',
        '/approvals/batch',
        'olga-approver',
        { items: [{ id, action: 'approve' }] },
        { 'x-request-id': 'self-3' },
      ),
    ];
    expect(attempts[0]!.status).toBe(403);
    expect(await json(attempts[0]!)).toMatchObject({
      error: { code: 'self_approval', details: { by: 'olga', involved_as: ['queued', 'tested'] } },
    });
    expect(attempts[1]!.status).toBe(403);
    expect((await json(attempts[1]!)).error.code).toBe('self_approval');
    expect((await json(attempts[2]!)).results[0]).toMatchObject({ ok: false, error: { code: 'self_approval' } });
    // Nothing changed: same revision (no journal row), no approval row, still pending.
    expect(await revision(id)).toBe(before);
    expect(await approvalRows(id)).toBe(0);
    expect((await json(await call('GET', `/queue/${id}`, 'vera'))).state).toBe('pending_approval');
    // Each refusal is one audit row, as the person.
    for (const rid of ['self-1', 'self-2', 'self-3']) {
      const rows = await auditOf(rid);
      expect(rows, rid).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        actor: 'olga',
        outcome: 'denied',
        status_code: 403,
        target_type: 'queue_entry',
        target_id: String(id),
        details: { error: 'self_approval' },
      });
    }
    // Another person approves: one row, written with the transition.
    const ok = await call(
      'POST',
      `/approvals/${id}/approve`,
      'alice',
      { reason: 'evidence reviewed' },
      { 'x-request-id': 'ok-1' },
    );
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ approvals_missing: 0, approvals_required: 1, approved_by: ['alice'] });
    expect(await auditOf('ok-1')).toEqual([
      expect.objectContaining({
        actor: 'alice',
        action: 'POST /approvals/:id/approve',
        outcome: 'succeeded',
        status_code: 200,
        target_id: String(id),
        details: expect.objectContaining({ event: 'APPROVE', from_state: 'pending_approval' }),
      }),
    ]);
    await waitForStatus(t.db, id, (s) => s === 'completed');
  });

  it('the entry keeps the policy it was queued under (approval age from approval_policy)', async () => {
    const id = await pendingBy('USN-8104-1');
    const ctx = (await sys.host.contextOf(id))!.context;
    expect(ctx).toMatchObject({
      separationOfDuties: true,
      requiredApprovals: 1,
      settings: { approvalMaxAgeMs: 72 * 3_600_000 },
    });
    await call('POST', `/approvals/${id}/reject`, 'alice', { reason: 'not needed' });
  });

  it('a Critical errata stays pending after one approval and proceeds after a second, distinct one', async () => {
    const id = await pendingBy('USN-8101-1');
    const first = await call('POST', `/approvals/${id}/approve`, 'alice', { reason: 'first pair of eyes' });
    expect(first.status).toBe(200);
    expect(await json(first)).toMatchObject({
      status: 'pending_approval',
      approvals_missing: 1,
      approvals_required: 2,
      approved_by: ['alice'],
    });
    const again = await call('POST', `/approvals/${id}/approve`, 'alice', {});
    expect(again.status).toBe(409);
    expect((await json(again)).error.code).toBe('already_approved');
    expect((await json(await call('GET', `/queue/${id}`, 'vera'))).state).toBe('pending_approval');
    const second = await call('POST', `/approvals/${id}/approve`, 'bob', { reason: 'second pair of eyes' });
    expect(second.status).toBe(200);
    expect(await json(second)).toMatchObject({ approvals_missing: 0, approved_by: ['alice', 'bob'] });
    await waitForStatus(t.db, id, (s) => s === 'completed');
  });

  it('a severity raised after queueing (NVD) counts at approval time', async () => {
    const id = await pendingBy('USN-8102-1');
    expect((await sys.host.contextOf(id))!.context.requiredApprovals).toBe(1);
    await t.db.query(sql.unsafe`UPDATE errata_cache SET severity = 'Critical' WHERE errata_id = 'USN-8102-1'`);
    const first = await json(await call('POST', `/approvals/${id}/approve`, 'alice', {}));
    expect(first).toMatchObject({ status: 'pending_approval', approvals_missing: 1, approvals_required: 2 });
    expect((await json(await call('POST', `/approvals/${id}/approve`, 'bob', {}))).approvals_missing).toBe(0);
    await waitForStatus(t.db, id, (s) => s === 'completed');
  });
});

/** A HALT errata halted at its first wave (needs_attention, phase prod), with a deployment whose system carries the patch. */
async function halted(errataId: string): Promise<{ id: number; deploymentId: number }> {
  const id = await pendingBy(errataId, 'oscar');
  expect((await call('POST', `/approvals/${id}/approve`, 'alice', {})).status).toBe(200);
  await waitForStatus(t.db, id, (s) => s === 'needs_attention');
  // The fake world plans deployment number = entry id without a row: give it one, with a patched system.
  await t.db.query(
    sql.unsafe`INSERT INTO patch_deployments (id, queue_id, errata_id, status, total_systems) VALUES (${id}, ${id}, ${errataId}, 'halted', 1)`,
  );
  await t.db.query(
    sql.unsafe`INSERT INTO patch_deployment_systems (deployment_id, system_id, system_name, wave, status, action_id) VALUES (${id}, 2001, 'web-1', 0, 'succeeded', 77)`,
  );
  return { id, deploymentId: id };
}

describe('production-affecting actions need the approver role', () => {
  it("force-rollback: system type or a production-phase entry needs approver; a test-phase package rollback is an operator's", async () => {
    const q = await call('POST', '/queue', 'oscar', { errata_id: 'FAKE-8107-INCONCL' });
    const id = (await json(q)).results[0].id as number;
    await call('POST', '/tests/start', 'oscar', { queue_id: id, test_system: { id: 1, name: 'test-ubuntu-01' } });
    await waitForStatus(t.db, id, (s) => s === 'needs_attention');
    const sysType = await call('POST', `/queue/${id}/force-rollback`, 'oscar', {
      reason: 'restore',
      rollback_type: 'system',
    });
    expect(sysType.status).toBe(403);
    expect(await json(sysType)).toMatchObject({
      error: {
        code: 'forbidden',
        details: { required_role: 'approver', reason: expect.stringMatching(/system-level/) },
      },
    });
    const pkg = await call('POST', `/queue/${id}/force-rollback`, 'oscar', {
      reason: 'no evidence',
      rollback_type: 'package',
    });
    expect(pkg.status).toBe(200);

    const h = await halted('FAKE-8105-HALT');
    const op = await call('POST', `/queue/${h.id}/force-rollback`, 'oscar', {
      reason: 'wave 0 broke',
      rollback_type: 'package',
    });
    expect(op.status).toBe(403);
    expect((await json(op)).error.details.reason).toMatch(/production phase/);
    expect((await call('POST', `/queue/${h.id}/retry`, 'oscar', {})).status).toBe(403);
    const ap = await call('POST', `/queue/${h.id}/force-rollback`, 'bob', {
      reason: 'wave 0 broke',
      rollback_type: 'package',
    });
    expect(ap.status).toBe(200);
    await waitForStatus(t.db, h.id, (s) => s === 'rolled_back');
  });

  it('MARK_FAILED of a production-phase entry: approver, and refused while production systems carry the patch', async () => {
    const h = await halted('FAKE-8106-HALT');
    expect((await call('POST', `/queue/${h.id}/mark-failed`, 'oscar', { reason: 'give up' })).status).toBe(403);
    const before = await revision(h.id);
    const carrying = await call('POST', `/queue/${h.id}/mark-failed`, 'bob', { reason: 'give up' });
    expect(carrying.status).toBe(409);
    expect(await json(carrying)).toMatchObject({
      error: {
        code: 'production_carries_patch',
        details: { systems: [{ deployment_id: h.deploymentId, system_id: 2001, status: 'succeeded' }] },
      },
    });
    expect(await revision(h.id)).toBe(before);
    // Once no system carries it (rolled back by hand, say), the entry may be closed as rolled back.
    await t.db.query(
      sql.unsafe`UPDATE patch_deployment_systems SET status = 'rolled_back' WHERE deployment_id = ${h.deploymentId}`,
    );
    const ok = await call('POST', `/queue/${h.id}/mark-failed`, 'bob', { reason: 'rolled back by hand on web-1' });
    expect(ok.status).toBe(200);
    expect(await json(ok)).toMatchObject({ status: 'rolled_back' });
  });
});

describe('Idempotency-Key on POST /queue and POST /rollback', () => {
  it('POST /queue executes once and replays the first answer; one audit row per request', async () => {
    const key = { 'idempotency-key': 'queue-8103' };
    const first = await call(
      'POST',
      '/queue',
      'oscar',
      { errata_id: 'USN-8103-1' },
      { ...key, 'x-request-id': 'idem-q-1' },
    );
    expect(first.status).toBe(201);
    const body = await json(first);
    expect(body.queued).toBe(1);
    const second = await call(
      'POST',
      '/queue',
      'oscar',
      { errata_id: 'USN-8103-1' },
      { ...key, 'x-request-id': 'idem-q-2' },
    );
    expect(second.status).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await json(second)).toEqual(body);
    expect(
      await t.db.oneFirst(sql.type(n)`SELECT count(*)::int AS n FROM patch_test_queue WHERE errata_id = 'USN-8103-1'`),
    ).toBe(1);
    expect(await auditOf('idem-q-1')).toEqual([
      expect.objectContaining({
        actor: 'oscar',
        action: 'POST /queue',
        outcome: 'succeeded',
        status_code: 201,
        target_type: 'queue_entry',
        target_id: String(body.results[0].id),
      }),
    ]);
    expect(await auditOf('idem-q-2')).toEqual([
      expect.objectContaining({
        actor: 'oscar',
        action: 'POST /queue',
        status_code: 201,
        details: { idempotent_replay: true },
      }),
    ]);
  });

  it('POST /rollback executes once and replays the first answer; one audit row per request', async () => {
    await seedErrata(t.db, ['FAKE-8108-HALT']);
    const h = await halted('FAKE-8108-HALT');
    const req = { deployment_id: h.deploymentId, type: 'package', reason: 'wave 0 broke nginx' };
    const key = { 'idempotency-key': 'rb-8108' };
    const first = await call('POST', '/rollback', 'alice', req, { ...key, 'x-request-id': 'idem-rb-1' });
    expect(first.status).toBe(202);
    const body = await json(first);
    expect(body).toMatchObject({ deployment_id: h.deploymentId, queue_id: h.id });
    const second = await call('POST', '/rollback', 'alice', req, { ...key, 'x-request-id': 'idem-rb-2' });
    expect(second.status).toBe(202);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await json(second)).toEqual(body);
    await waitForStatus(t.db, h.id, (s) => s === 'rolled_back');
    const forced = await t.db.oneFirst(
      sql.type(
        n,
      )`SELECT count(*)::int AS n FROM patch_transitions WHERE queue_id = ${h.id} AND event_type = 'FORCE_ROLLBACK'`,
    );
    expect(forced).toBe(1);
    expect(await auditOf('idem-rb-1')).toEqual([
      expect.objectContaining({
        actor: 'alice',
        action: 'POST /rollback',
        outcome: 'succeeded',
        status_code: 202,
        target_id: String(h.id),
        details: expect.objectContaining({ event: 'FORCE_ROLLBACK' }),
      }),
    ]);
    expect(await auditOf('idem-rb-2')).toEqual([
      expect.objectContaining({ action: 'POST /rollback', details: { idempotent_replay: true } }),
    ]);
  });
});

describe('audit', () => {
  it('every mutating request and every denial (a 403 on a read too) is one row; PATCH in its own transaction', async () => {
    const id = (await json(await call('GET', '/queue?limit=1', 'vera'))).items[0].id as number;
    expect(
      (await call('PATCH', `/queue/${id}`, 'oscar', { notes: 'change window 42' }, { 'x-request-id': 'patch-1' }))
        .status,
    ).toBe(200);
    expect(await auditOf('patch-1')).toEqual([
      expect.objectContaining({
        actor: 'oscar',
        action: 'PATCH /queue/:id',
        outcome: 'succeeded',
        target_id: String(id),
        details: { fields: ['notes'] },
      }),
    ]);
    expect(
      (await call('PATCH', '/queue/99999999', 'oscar', { notes: 'x' }, { 'x-request-id': 'patch-2' })).status,
    ).toBe(404);
    expect(await auditOf('patch-2')).toEqual([
      expect.objectContaining({ outcome: 'failed', status_code: 404, details: { error: 'not_found' } }),
    ]);
    expect((await call('GET', '/audit', 'vera', undefined, { 'x-request-id': 'read-403' })).status).toBe(403);
    expect(await auditOf('read-403')).toEqual([
      expect.objectContaining({ actor: 'vera', action: 'GET /audit', outcome: 'denied', status_code: 403 }),
    ]);
    expect((await call('GET', '/queue', {}, undefined, { 'x-request-id': 'anon-401' })).status).toBe(401);
    expect(await auditOf('anon-401')).toEqual([
      expect.objectContaining({ actor: 'anonymous', outcome: 'denied', status_code: 401 }),
    ]);
    // Reads that are allowed are not audited.
    expect((await call('GET', '/queue', 'vera', undefined, { 'x-request-id': 'read-ok' })).status).toBe(200);
    expect(await auditOf('read-ok')).toEqual([]);
  });

  it('a route missing from every table is never reached without a principal', async () => {
    const deps = baseDeps(t.db);
    const a = createApp(deps, [(api) => void api.get('/unlisted', (c) => c.json({ who: c.get('principal').person }))]);
    expect((await a.request('/api/v1/unlisted')).status).toBe(401);
    const ok = await a.request('/api/v1/unlisted', { headers: { authorization: `Bearer ${tok.vera}` } });
    expect(await ok.json()).toEqual({ who: 'vera' });
  });

  it('GET /audit: admin only, filters, keyset paging, JSONL and CSV export', async () => {
    const page1 = await json(await call('GET', '/audit?actor=olga&limit=2', 'root'));
    expect(page1.items).toHaveLength(2);
    expect(page1.items.every((r: any) => r.actor === 'olga' && /^\d{4}-/.test(r.at))).toBe(true);
    expect(page1.items[0].seq).toBeGreaterThan(page1.items[1].seq);
    const page2 = await json(await call('GET', `/audit?actor=olga&limit=2&cursor=${page1.next_cursor}`, 'root'));
    expect(page2.items.every((r: any) => r.seq < page1.items[1].seq)).toBe(true);
    const denied = await json(await call('GET', '/audit?outcome=denied&order=asc&limit=1000', 'root'));
    expect(denied.items.length).toBeGreaterThanOrEqual(5);
    expect(denied.items.every((r: any) => r.outcome === 'denied')).toBe(true);
    const target = (await auditOf('ok-1'))[0]!.target_id!;
    const byTarget = await json(
      await call(
        'GET',
        `/audit?target=queue_entry:${target}&action=${encodeURIComponent('POST /approvals/:id/approve')}`,
        'root',
      ),
    );
    expect(byTarget.items.map((r: any) => r.actor).sort()).toEqual(['alice', 'olga', 'olga']);
    const future = await json(await call('GET', '/audit?since=2999-01-01T00:00:00Z', 'root'));
    expect(future.items).toEqual([]);
    expect((await call('GET', '/audit?since=yesterday', 'root')).status).toBe(400);

    const jsonl = await call('GET', '/audit?actor=olga', 'root', undefined, { accept: 'application/x-ndjson' });
    expect(jsonl.headers.get('content-type')).toMatch(/ndjson/);
    const lines = (await jsonl.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.every((l) => l.actor === 'olga' && typeof l.hash === 'string')).toBe(true);
    const csv = await call('GET', '/audit?format=csv&outcome=denied&order=asc', 'root');
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const rows = (await csv.text()).trim().split('\r\n');
    expect(rows[0]).toBe(
      'seq,id,at,actor,token_id,action,method,path,target_type,target_id,outcome,status_code,ip_address,user_agent,request_id,details,prev_hash,hash',
    );
    expect(rows.length - 1).toBe(denied.items.length);
  });
});

describe('an audit log that cannot be written', () => {
  it('refuses to act unrecorded: 503 audit_unavailable for a refusal and for an approval, and nothing changes', async () => {
    const id = await pendingBy('USN-8108-1');
    const before = { revision: await revision(id), approvals: await approvalRows(id) };
    // The audit table refuses every row (a full disk, a revoked grant, a broken replica).
    await t.db.query(sql.unsafe`
      CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'audit_log is read-only (test)'; END $$`);
    await t.db.query(
      sql.unsafe`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()`,
    );
    try {
      const anonymous = await call('GET', '/queue', {});
      expect(anonymous.status).toBe(503);
      expect((await json(anonymous)).error.code).toBe('audit_unavailable');
      const forbidden = await call('POST', `/approvals/${id}/approve`, 'vera', { reason: 'viewer tries' });
      expect(forbidden.status).toBe(503);
      expect((await json(forbidden)).error.code).toBe('audit_unavailable');
      const approve = await call('POST', `/approvals/${id}/approve`, 'bob', { reason: 'looks good' });
      expect(approve.status, JSON.stringify(await approve.clone().json())).toBe(503);
      expect({ revision: await revision(id), approvals: await approvalRows(id) }).toEqual(before);
      expect(await statusOfEntry(t.db, id)).toBe('pending_approval');
    } finally {
      await t.db.query(sql.unsafe`DROP TRIGGER test_refuse_audit ON audit_log`);
      await t.db.query(sql.unsafe`DROP FUNCTION test_refuse_audit()`);
    }
    // Recorded again: the same approval goes through.
    const again = await call('POST', `/approvals/${id}/approve`, 'bob', { reason: 'looks good' });
    expect(again.status).toBe(200);
  });
});
