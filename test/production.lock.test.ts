/**
 * One deployment in progress per production group (issue 12): the real engine (UYUNI, Salt) over
 * the lab world, the real actor host and PostgreSQL, in-process. Two errata for the one production
 * group, approved together, in one open window: the second waits in prod_pending with the reason
 * shown (GET /queue/{id}) and starts when the first ends — their waves never overlap. The rule is
 * the primary key of production_group_locks, not a check in code.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../src/http/app.ts';
import { deploymentRoutes } from '../src/http/routes/deployments.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import { engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { RollbackRunner } from '../src/scheduler/rollbacks.ts';
import { loadThresholds, settingsFrom } from '../src/services/settings.ts';
import { waitForStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { LAB_ENGINE_THRESHOLDS, startLabEngine, type LabEngine } from './helpers/labEngine.ts';
import { baseDeps, silentLogger } from './helpers/deps.ts';
import { apiAs, issueTokens } from './helpers/tokens.ts';

const TEST_SYSTEM = { id: 1_000_020_001, name: 'ubuntu-2404-test-01.lab' };

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(4), { pickupMs: 50, runMs: 150, rebootMs: 500 });
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;
let lab: LabEngine;
let tokens: Record<'oscar' | 'alice', string>;
let call: ReturnType<typeof apiAs<'oscar' | 'alice'>>;

beforeAll(async () => {
  t = await createTestDatabase();
  lab = await startLabEngine(t.db, world, { ownerId: 'lock-test', thresholds: LAB_ENGINE_THRESHOLDS });
  sys = lab.sys;
  const deps = baseDeps(t.db);
  const settings = async () => settingsFrom(await loadThresholds(t.db));
  app = createApp(deps, [
    queueRoutes({
      ...deps,
      actors: sys.host,
      clock: sys.clock,
      settings,
      testEngine: { available: true, reason: null },
    }),
    deploymentRoutes({ ...deps, actors: sys.host }),
  ]);
  tokens = await issueTokens(t.db, { oscar: 'operator', alice: 'approver' });
  call = apiAs(app, tokens);
}, 60_000);

afterAll(async () => {
  await lab?.stop();
  await world.stop();
  await t?.drop();
});

/** Queued and tested by oscar, up to the approval gate. */
async function tested(errataId: string): Promise<number> {
  const q = await call('POST', '/queue', 'oscar', { errata_id: errataId });
  expect(q.status, JSON.stringify(q.body)).toBe(201);
  const id = q.body.results[0].id as number;
  expect((await call('POST', '/tests/start', 'oscar', { queue_id: id, test_system: TEST_SYSTEM })).status).toBe(202);
  await waitForStatus(
    t.db,
    id,
    (s) => s === 'pending_approval' || s === 'needs_attention' || s === 'rolled_back',
    60_000,
  );
  expect((await call('GET', `/queue/${id}`, 'oscar')).body.entry.status).toBe('pending_approval');
  return id;
}

const waveSpans = (queueId: number) =>
  t.db.one(sql.type(
    z.object({ deployment_id: z.number(), first_start: z.number(), last_end: z.number(), systems: z.number() }),
  )`
    SELECT d.id AS deployment_id, min(s.started_at) AS first_start, max(s.completed_at) AS last_end, count(*)::int AS systems
    FROM patch_deployments d JOIN patch_deployment_systems s ON s.deployment_id = d.id
    WHERE d.queue_id = ${queueId} AND s.status = 'succeeded' GROUP BY d.id`);

describe('one deployment in progress per production group', () => {
  it('two approved errata for one group in one window: the second waits with the reason shown, their waves never overlap', async () => {
    const a = await tested('6100-1');
    const b = await tested('6121-1');
    // Both approved at once (by a person other than who queued and tested them).
    const [ra, rb] = await Promise.all([
      call('POST', `/approvals/${a}/approve`, 'alice', { reason: 'first' }),
      call('POST', `/approvals/${b}/approve`, 'alice', { reason: 'second' }),
    ]);
    expect([ra.status, rb.status]).toEqual([200, 200]);

    // Whichever deployment took the group first, the other waits in prod_pending, saying for what.
    let waited: { id: number; reason: string } | null = null;
    const until = Date.now() + 60_000;
    while (waited === null && Date.now() < until) {
      for (const [id, other] of [
        [a, '6121-1'],
        [b, '6100-1'],
      ] as const) {
        const e = (await call('GET', `/queue/${id}`, 'oscar')).body;
        const why = e.production?.waiting_for as string | null | undefined;
        if (e.entry.status === 'prod_pending' && why) {
          expect(why).toMatch(
            new RegExp(
              `^waiting for production group prod-ubuntu-web: deployment \\d+ of ${other} \\(entry \\d+\\) is in progress since `,
            ),
          );
          waited = { id, reason: why };
        }
      }
      if (waited === null) await new Promise((r) => setTimeout(r, 20));
    }
    expect(waited, 'one deployment waited for the other').not.toBeNull();
    // The group is held by exactly one entry at any time (the primary key says so).
    const holders = await t.db.any(
      sql.type(
        z.object({ group_name: z.string(), queue_id: z.number() }),
      )`SELECT group_name, queue_id FROM production_group_locks`,
    );
    expect(holders).toHaveLength(1);
    expect(holders[0]!.group_name).toBe('prod-ubuntu-web');
    expect(holders[0]!.queue_id).not.toBe(waited!.id);

    await waitForStatus(t.db, a, (s) => s === 'completed', 120_000);
    await waitForStatus(t.db, b, (s) => s === 'completed', 120_000);
    const [sa, sb] = [await waveSpans(a), await waveSpans(b)];
    expect(sa.systems).toBe(4);
    expect(sb.systems).toBe(4);
    const [first, second] = sa.first_start < sb.first_start ? [sa, sb] : [sb, sa];
    // Every wave of the second started after the last wave of the first ended.
    expect(second.first_start).toBeGreaterThanOrEqual(first.last_end);
    expect(first.deployment_id).not.toBe(second.deployment_id);
    // Both ended: no group is held, no reason is left.
    expect(
      await t.db.anyFirst(
        sql.type(z.object({ group_name: z.string() }))`SELECT group_name FROM production_group_locks`,
      ),
    ).toEqual([]);
    expect((await call('GET', `/queue/${waited!.id}`, 'oscar')).body.production).toMatchObject({
      waiting_for: null,
      holds_groups: [],
    });
  }, 180_000);

  it('the rollback of a completed deployment takes its groups too: it waits, saying for what, while another deployment holds one', async () => {
    const deps = await t.db.any(
      sql.type(
        z.object({ id: z.number(), queue_id: z.number(), errata_id: z.string() }),
      )`SELECT id, queue_id, errata_id FROM patch_deployments WHERE status = 'completed' ORDER BY id LIMIT 2`,
    );
    expect(deps).toHaveLength(2);
    const [mine, other] = deps as [(typeof deps)[number], (typeof deps)[number]];
    // The other errata's deployment is (again) rolling out to the group.
    await t.db.query(
      sql.unsafe`INSERT INTO production_group_locks (group_name, deployment_id, queue_id, errata_id) VALUES ('prod-ubuntu-web', ${other.id}, ${other.queue_id}, ${other.errata_id})`,
    );
    const runner = new RollbackRunner({
      db: t.db,
      logger: silentLogger,
      ports: lab.ports,
      pollMs: 100,
    });
    const rbApp = createApp(baseDeps(t.db), [
      deploymentRoutes({ ...baseDeps(t.db), actors: sys.host, rollbacks: runner }),
    ]);
    const rbCall = async (method: string, path: string, body?: unknown) => {
      const res = await rbApp.request(`/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${tokens.alice}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const installs = () => world.countOf('package_install|') + world.countOf('pkg_install|');
    runner.start();
    try {
      const installsBefore = installs();
      const r = await rbCall('POST', `/deployments/${mine.id}/rollback`, {
        type: 'package',
        reason: 'regression seen in production',
      });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      const rbId = r.body.rollback_id;
      expect(typeof rbId, JSON.stringify(r.body)).toBe('number');
      let job: any;
      for (let i = 0; i < 100; i++) {
        job = (await rbCall('GET', `/rollback/${rbId}`)).body;
        if (job.wait_reason) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(job).toMatchObject({ status: 'in_progress' });
      expect(job.wait_reason).toMatch(
        new RegExp(
          `^waiting for production group prod-ubuntu-web: deployment ${other.id} of ${other.errata_id} \\(entry ${other.queue_id}\\)`,
        ),
      );
      await new Promise((res) => setTimeout(res, 300));
      expect(installs(), 'nothing rolled back while the group is held').toBe(installsBefore);
      // The other deployment ends: the rollback takes the group, runs, and gives it back.
      await t.db.query(sql.unsafe`DELETE FROM production_group_locks WHERE deployment_id = ${other.id}`);
      for (let i = 0; i < 400 && job.status === 'in_progress'; i++) {
        await new Promise((res) => setTimeout(res, 50));
        job = (await rbCall('GET', `/rollback/${rbId}`)).body;
      }
      expect(job).toMatchObject({ status: 'completed', wait_reason: null });
      expect(installs()).toBeGreaterThan(installsBefore);
      // The runner gives the group back right after the job row says completed.
      const held = () =>
        t.db.anyFirst(sql.type(z.object({ group_name: z.string() }))`SELECT group_name FROM production_group_locks`);
      for (let i = 0; i < 100 && (await held()).length > 0; i++) await new Promise((res) => setTimeout(res, 50));
      expect(await held()).toEqual([]);
    } finally {
      await runner.stop();
    }
  }, 60_000);

  it('the rule is a database constraint: a second holder of a group is refused by PostgreSQL', async () => {
    const dep = await t.db.one(
      sql.type(
        z.object({ id: z.number(), queue_id: z.number(), errata_id: z.string() }),
      )`SELECT id, queue_id, errata_id FROM patch_deployments ORDER BY id LIMIT 1`,
    );
    await t.db.query(
      sql.unsafe`INSERT INTO production_group_locks (group_name, deployment_id, queue_id, errata_id) VALUES ('prod-x', ${dep.id}, ${dep.queue_id}, ${dep.errata_id})`,
    );
    await expect(
      t.db.query(
        sql.unsafe`INSERT INTO production_group_locks (group_name, deployment_id, queue_id, errata_id) VALUES ('prod-x', ${dep.id}, ${dep.queue_id}, ${dep.errata_id})`,
      ),
    ).rejects.toThrow(/duplicate key|unique/i);
    await t.db.query(sql.unsafe`DELETE FROM production_group_locks WHERE group_name = 'prod-x'`);
  });
});
