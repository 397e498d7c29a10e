/**
 * An approval is bound to the production groups it approved (issue 12): the real engine (UYUNI,
 * Salt) over the lab world, the real actor host, HTTP routes and PostgreSQL, in-process. Each
 * approval records the groups the errata targets as it is given; when the deployment is planned,
 * a group not every approval covered voids them — back to the approvers, nothing planned.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../src/http/app.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import { engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { loadApprovalPolicy, loadThresholds, settingsFrom } from '../src/services/settings.ts';
import { waitForStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { LAB_ENGINE_THRESHOLDS, startLabEngine, type LabEngine } from './helpers/labEngine.ts';
import { apiAs, issueTokens } from './helpers/tokens.ts';

const TEST_SYSTEM = { id: 1_000_020_001, name: 'ubuntu-2404-test-01.lab' };

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(2), { pickupMs: 50, runMs: 150, rebootMs: 500 });
let app: ReturnType<typeof createApp>;
let lab: LabEngine;
let tokens: Record<'oscar' | 'alice' | 'bob', string>;
let call: ReturnType<typeof apiAs<'oscar' | 'alice' | 'bob'>>;

beforeAll(async () => {
  t = await createTestDatabase();
  lab = await startLabEngine(t.db, world, { ownerId: 'scope-test', thresholds: LAB_ENGINE_THRESHOLDS });
  const deps = baseDeps(t.db);
  app = createApp(deps, [
    queueRoutes({
      ...deps,
      actors: lab.sys.host,
      clock: lab.sys.clock,
      settings: async () => settingsFrom(await loadThresholds(t.db)),
      testEngine: { available: true, reason: null },
    }),
  ]);
  tokens = await issueTokens(t.db, { oscar: 'operator', alice: 'approver', bob: 'approver' });
  call = apiAs(app, tokens);
}, 60_000);

afterAll(async () => {
  await lab?.stop();
  await world.stop();
  await t?.drop();
});

describe('an approval covers the production groups it approved, and no group added later', () => {
  it('a group the errata reaches after an approval voids the approvals before anything is planned', async () => {
    // Two approvers for every errata: the systems change between the first approval and the second.
    await setConfigValue(
      t.db,
      'approval_policy',
      { ...(await loadApprovalPolicy(t.db)), required_approvals: 2 },
      'test',
    );
    const q = await call('POST', '/queue', 'oscar', { errata_id: '6100-1' });
    expect(q.status, JSON.stringify(q.body)).toBe(201);
    const id = q.body.results[0].id as number;
    expect((await call('POST', '/tests/start', 'oscar', { queue_id: id, test_system: TEST_SYSTEM })).status).toBe(202);
    await waitForStatus(
      t.db,
      id,
      (s) => s === 'pending_approval' || s === 'needs_attention' || s === 'rolled_back',
      60_000,
    );
    const entry = (await call('GET', `/queue/${id}`, 'oscar')).body;
    expect(entry.entry.status).toBe('pending_approval');
    const errataId = entry.entry.errata_id as string;

    const first = await call('POST', `/approvals/${id}/approve`, 'alice', { reason: 'change 4711' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ approvals_missing: 1, target_groups: ['prod-ubuntu-web'] });

    // UYUNI now has a database host in a new production group that the errata applies to.
    await t.db.query(sql.unsafe`
      INSERT INTO uyuni_systems (system_id, name, group_name, role, target_os)
      VALUES (1000990001, 'ubuntu-2404-db-01.lab', 'prod-ubuntu-db', 'prod', 'ubuntu')`);
    await t.db.query(sql.unsafe`
      UPDATE errata_cache SET affected_system_ids = affected_system_ids || 1000990001 WHERE errata_id = ${errataId}`);

    const second = await call('POST', `/approvals/${id}/approve`, 'bob', { reason: 'change 4711' });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body).toMatchObject({ approvals_missing: 0, target_groups: ['prod-ubuntu-db', 'prod-ubuntu-web'] });

    // Alice approved prod-ubuntu-web only: the plan would reach prod-ubuntu-db, so it is not made.
    let gate: any;
    for (let i = 0; i < 400; i++) {
      const e = (await call('GET', `/queue/${id}`, 'oscar')).body;
      gate = e.approval;
      if (e.entry.status === 'pending_approval' && gate?.voided) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(gate.voided?.reason).toBe(
      'the errata now also targets production group prod-ubuntu-db, which the approval does not cover ' +
        '(approved for: prod-ubuntu-web)',
    );
    expect(gate).toMatchObject({ required: 2, missing: 2, approvals: [], covers_groups: null });
    const deployments = await t.db.anyFirst(
      sql.type(z.object({ id: z.number() }))`SELECT id FROM patch_deployments WHERE queue_id = ${id}`,
    );
    expect(deployments, 'nothing was planned').toEqual([]);
    const journal = await t.db.anyFirst(sql.type(z.object({ to_state: z.string() }))`
      SELECT to_state FROM patch_transitions WHERE queue_id = ${id} ORDER BY seq`);
    expect(journal.slice(-3)).toEqual(['prod_pending.planning', 'passed', 'pending_approval']);

    // Approved again, for both groups: the deployment reaches both.
    expect((await call('POST', `/approvals/${id}/approve`, 'alice', { reason: 'db too' })).status).toBe(200);
    const again = await call('POST', `/approvals/${id}/approve`, 'bob', { reason: 'db too' });
    expect(again.body).toMatchObject({ approvals_missing: 0, target_groups: ['prod-ubuntu-db', 'prod-ubuntu-web'] });
    let groups: string[] = [];
    for (let i = 0; i < 400 && groups.length === 0; i++) {
      groups = [
        ...(await t.db.anyFirst(sql.type(z.object({ g: z.string() }))`
          SELECT DISTINCT s.group_name AS g FROM patch_deployments d JOIN patch_deployment_systems s ON s.deployment_id = d.id
          WHERE d.queue_id = ${id} ORDER BY 1`)),
      ];
      if (groups.length === 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(groups).toEqual(['prod-ubuntu-db', 'prod-ubuntu-web']);
  }, 120_000);
});
