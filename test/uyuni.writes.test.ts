/**
 * UYUNI scheduling calls are never re-sent blindly (issue 11): when UYUNI carries a call out but
 * answers after the client's timeout, the client does not send it again — it reports the outcome
 * as unknown (transient), and the engine looks the action up before scheduling again. Reads are
 * still retried.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateFleet, SEED_SCALE } from '../src/lab/fleet.ts';
import { LabUyuni } from '../src/lab/uyuni.ts';
import { UyuniClient, UyuniOutcomeUnknown } from '../src/services/uyuni/client.ts';
import { isTransient } from '../src/transient.ts';

const TIMEOUT_MS = 300;
const lab = new LabUyuni(generateFleet(SEED_SCALE), { pickupMs: 60, runMs: 60 });
let client: UyuniClient;
beforeAll(async () => {
  const url = await lab.serve();
  client = new UyuniClient({
    url,
    user: 'admin',
    password: 'admin',
    verifySsl: true,
    timeoutMs: TIMEOUT_MS,
    syncWorkers: 4,
  });
});
afterAll(() => lab.close());

const ubuntu = () => lab.fleet.systems.find((s) => s.os === 'ubuntu')!;

describe('UYUNI writes answered after the timeout', () => {
  it('scheduleReboot: one reboot action, and an outcome-unknown (transient) error instead of a second one', async () => {
    lab.answerDelayMs.set('system.scheduleReboot', TIMEOUT_MS + 1000);
    const before = lab.actionsOfType('System reboot', ubuntu().id);
    const err = await client
      .withSession((s) => s.scheduleReboot(ubuntu().id))
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(UyuniOutcomeUnknown);
    expect(isTransient(err)).toBe(true);
    await new Promise((r) => setTimeout(r, TIMEOUT_MS + 1200));
    expect(lab.actionsOfType('System reboot', ubuntu().id)).toBe(before + 1);
    expect(lab.calls.get('system.scheduleReboot')).toBe(1);
    lab.answerDelayMs.delete('system.scheduleReboot');
  });

  it('scheduleApplyErrata: one apply action', async () => {
    const errata = lab.fleet.errata.find((e) => e.id === ubuntu().relevant[0])!;
    lab.answerDelayMs.set('system.scheduleApplyErrata', TIMEOUT_MS + 1000);
    const before = lab.actionsFor(errata.advisoryName);
    const err = await client
      .withSession((s) => s.scheduleApplyErrata([ubuntu().id], [errata.id]))
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(UyuniOutcomeUnknown);
    await new Promise((r) => setTimeout(r, TIMEOUT_MS + 1200));
    expect(lab.actionsFor(errata.advisoryName)).toBe(before + 1);
    expect(lab.calls.get('system.scheduleApplyErrata')).toBe(1);
    lab.answerDelayMs.delete('system.scheduleApplyErrata');
  });

  it('a read answered late is retried (it changes nothing)', async () => {
    lab.answerDelayMs.set('system.listSystemEvents', TIMEOUT_MS + 200);
    const before = lab.calls.get('system.listSystemEvents') ?? 0;
    await expect(client.withSession((s) => s.listSystemEvents(ubuntu().id))).rejects.toThrow(/no answer within/);
    expect((lab.calls.get('system.listSystemEvents') ?? 0) - before).toBe(3);
    lab.answerDelayMs.delete('system.listSystemEvents');
  });
});
