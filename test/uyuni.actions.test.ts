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
      const [a] = await s.scheduleApplyErrata([ubuntu().id], [errataOf(2).id], {
        earliest: new Date(Date.now() + 60_000),
      });
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

describe('UYUNI package installs, installed packages, CLM, outages', () => {
  it('schedulePackageInstall answers one action per system; an unknown package is a fault', async () => {
    const pkg = errataOf(0).packages[0]!;
    const sys = lab.fleet.systems.slice(0, 2).map((s) => s.id);
    await client.withSession(async (s) => {
      const ids = await s.schedulePackageInstall(sys, [pkg.id]);
      expect(ids).toHaveLength(2);
      expect(new Set(ids).size).toBe(2);
      await expect(s.schedulePackageInstall(sys, [1])).rejects.toThrow(/Invalid package: 1/);
    });
  });

  it('system.listPackages is validated: name, version, release, epoch', async () => {
    lab.packagesOf = () => [{ name: 'openssl', version: '3.0.13', release: '0ubuntu3', epoch: '', arch: 'amd64' }];
    const pkgs = await client.withSession((s) => s.listInstalledPackages(ubuntu().id));
    expect(pkgs).toEqual([{ name: 'openssl', version: '3.0.13', release: '0ubuntu3', epoch: '', arch: 'amd64' }]);
  });

  it('CLM: environments in path order, promote copies into the successor, faults as UYUNI words them', async () => {
    lab.clm.set('p', [
      { id: 1, label: 'dev', name: 'Dev', version: 4, status: 'built' },
      { id: 2, label: 'test', name: 'Test', version: 3, status: 'built' },
      { id: 3, label: 'prod', name: 'Prod', version: 2, status: 'built' },
    ]);
    await client.withSession(async (s) => {
      const envs = await s.listProjectEnvironments('p');
      expect(envs.map((e) => [e.label, e.previousEnvironmentLabel, e.nextEnvironmentLabel])).toEqual([
        ['dev', undefined, 'test'],
        ['test', 'dev', 'prod'],
        ['prod', 'test', undefined],
      ]);
      expect(await s.promoteProject('p', 'test')).toBe(1);
      expect(await s.lookupEnvironment('p', 'prod')).toMatchObject({ version: 3, status: 'building' });
      await expect(s.promoteProject('p', 'test')).rejects.toThrow(/already in progress/);
      await expect(s.promoteProject('p', 'prod')).rejects.toThrow(/does not have successor/);
      await expect(s.listProjectEnvironments('nope')).rejects.toThrow(/Content Project not found/);
    });
  });

  it('UYUNI down for a while: calls fail as unavailable (retried with backoff), then work again', async () => {
    lab.downUntil = Date.now() + 60_000;
    await expect(client.withSession((s) => s.listAllGroups())).rejects.toThrow(/UYUNI/);
    lab.downUntil = 0;
    expect((await client.withSession((s) => s.listAllGroups())).length).toBeGreaterThan(0);
    expect(lab.dropped).toBeGreaterThan(0);
  });
});
