/**
 * UYUNI actions through the real client against the lab: scheduleApplyErrata → per-system
 * results as the action moves Queued → Picked Up → Completed / Failed (failure message kept),
 * cancel only while queued, reboot scheduling with UYUNI's raw-lookup fault, system events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFleet, SEED_SCALE } from '../src/lab/fleet.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { UyuniClient, UyuniFault, type UyuniSession } from '../src/services/uyuni/client.ts';

const lab = new LabUyuni(generateFleet(SEED_SCALE), { pickupMs: 60, runMs: 60 });
let client: UyuniClient;
beforeAll(async () => {
  const url = await lab.serve();
  client = new UyuniClient({ url, user: 'admin', password: 'admin', verifySsl: true, timeoutMs: 5000, syncWorkers: 4 });
});
afterAll(() => lab.close());

const ubuntu = () => lab.fleet.systems.find((s) => s.os === 'ubuntu')!;
const errataOf = (i: number) => lab.fleet.errata.find((e) => e.id === ubuntu().relevant[i])!;

async function settle(s: UyuniSession, actionId: number) {
  for (let i = 0; i < 100; i++) {
    const r = await s.actionSystems(actionId);
    if (r.inProgress.length === 0) return r;
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`action ${actionId} still in progress`);
}

describe('UYUNI actions', () => {
  it('an applied errata completes on its system; a failing one is reported failed with its message', async () => {
    const ok = errataOf(0);
    const bad = errataOf(1);
    lab.failApply.set(bad.advisoryName, new Set());
    await client.withSession(async (s) => {
      const [okAction] = await s.scheduleApplyErrata([ubuntu().id], [ok.id]);
      const early = await s.actionSystems(okAction!);
      expect(early.inProgress.map((x) => x.server_id)).toEqual([ubuntu().id]);
      const done = await settle(s, okAction!);
      expect(done.completed).toMatchObject([{ server_id: ubuntu().id, message: 'Applied patches' }]);
      const [badAction] = await s.scheduleApplyErrata([ubuntu().id], [bad.id]);
      const failed = await settle(s, badAction!);
      expect(failed.failed[0]?.message).toMatch(/could not be installed/);
      const events = await s.listSystemEvents(ubuntu().id);
      expect(events.map((e) => e.id)).toEqual(expect.arrayContaining([okAction, badAction]));
    });
    expect(lab.actionsFor(ok.advisoryName)).toBe(1);
  });

  it('cancel works while queued and is refused once picked up', async () => {
    await client.withSession(async (s) => {
      const [a] = await s.scheduleApplyErrata([ubuntu().id], [errataOf(2).id], { earliest: new Date(Date.now() + 60_000) });
      expect((await s.listInProgressActions()).map((x) => x.id)).toContain(a);
      expect(await s.cancelActions([a!])).toBe(1);
      expect((await s.actionSystems(a!)).failed[0]?.message).toBe('Canceled');
      const [b] = await s.scheduleApplyErrata([ubuntu().id], [errataOf(3).id]);
      await new Promise((r) => setTimeout(r, 80)); // picked up
      await expect(s.cancelActions([b!])).rejects.toThrow(/cannot cancel an action that has been picked up/);
    });
  });

  it('faults: unknown system -208 for apply; -1 (raw lookup) for reboot; unknown errata -208', async () => {
    await client.withSession(async (s) => {
      await expect(s.scheduleApplyErrata([42], [errataOf(0).id])).rejects.toMatchObject({ faultCode: -208 });
      await expect(s.scheduleApplyErrata([ubuntu().id], [999_999])).rejects.toThrow(/The patch 999999 cannot be found/);
      const err = await s.scheduleReboot(42).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UyuniFault);
      expect((err as UyuniFault).faultCode).toBe(-1);
      const reboot = await s.scheduleReboot(ubuntu().id);
      expect((await settle(s, reboot)).completed.map((x) => x.server_id)).toEqual([ubuntu().id]);
    });
  });
});
