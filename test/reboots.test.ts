/**
 * Rebooting a host exactly once (issue 11, hole 6: two clocks): whether a host booted since its
 * reboot request is decided from its uptime (Salt's `status.uptime` `seconds`) against the time
 * since the request on the orchestrator's one clock — never from the host's boot time against our
 * clock. Against the lab's Salt API over HTTP, with hosts whose clocks are behind or ahead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineDeps } from '../src/engine/deps.ts';
import { bootedSince, rebootOnce } from '../src/engine/reboots.ts';
import { engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { SaltClient } from '../src/services/salt/client.ts';
import { silentLogger } from './helpers/deps.ts';

const world = new LabWorld(engineFleet(6), { pickupMs: 50, runMs: 100, rebootMs: 300 });
let e: EngineDeps;
const HOUR = 3_600_000;
const OPTS = { pollMs: 50, deadlineMs: 5000, graceMs: 1000 };
const never = new AbortController().signal;

const prod = () => [...world.salt.minions.keys()].filter((n) => n.startsWith('web-')).sort();
const reboots = (name: string) => world.salt.effects.get(`reboot|${name}`) ?? 0;
const minion = (name: string) => world.salt.minions.get(name)!;

beforeAll(async () => {
  const urls = await world.start();
  const salt = new SaltClient({ url: urls.salt, user: 'salt', password: 'salt', eauth: 'pam', timeoutMs: 5000 });
  // Only Salt and the clock are used; the clock is the true time here (the database's in the daemon).
  e = { salt, clock: { now: () => Date.now() }, logger: silentLogger } as unknown as EngineDeps;
});
afterAll(async () => {
  await world.stop();
});

describe('bootedSince', () => {
  it('compares durations: an uptime shorter than the time since the request is a reboot since', () => {
    const at = 1_000_000_000_000;
    expect(bootedSince(3, at, at + 10_000)).toBe(true); // up 3 s, asked 10 s ago
    expect(bootedSince(86_400, at, at + 10_000)).toBe(false); // up a day
    expect(bootedSince(11, at, at + 10_000)).toBe(true); // within the 2 s tolerance
    expect(bootedSince(13, at, at + 10_000)).toBe(false);
  });
});

describe('rebootOnce against the lab Salt API', () => {
  it('a host whose clock is 10 minutes behind is rebooted once and seen back', async () => {
    const [name] = prod();
    world.host(name!, { clockOffsetMs: -10 * 60_000 });
    const before = reboots(name!);
    const recorded: string[][] = [];
    const r = await rebootOnce(
      e,
      [{ name: name!, requestedAt: null }],
      async (n) => void recorded.push(n),
      OPTS,
      never,
    );
    expect(r).toEqual({ back: [name], lost: [] });
    expect(reboots(name!)).toBe(before + 1);
    expect(recorded).toEqual([[name]]);
  });

  it('a host whose clock is 10 minutes ahead is not taken as back before it rebooted', async () => {
    const name = prod()[1]!;
    world.host(name, { clockOffsetMs: 10 * 60_000 });
    const before = reboots(name);
    const askedAt = Date.now();
    const r = await rebootOnce(e, [{ name, requestedAt: null }], async () => undefined, OPTS, never);
    expect(r.back).toEqual([name]);
    expect(reboots(name)).toBe(before + 1);
    // It was seen back only once it had booted, and its boot came after the request.
    expect(minion(name).bootTime).toBeGreaterThanOrEqual(askedAt);
    expect(Date.now() - minion(name).bootTime).toBeGreaterThanOrEqual(world.salt.rebootMs);
  });

  it('resumed after a crash: a host that rebooted for the recorded request is not rebooted again, whatever its clock', async () => {
    const name = prod()[2]!;
    world.host(name, { clockOffsetMs: -30 * 60_000 });
    minion(name).bootTime = Date.now() - 2000; // booted 2 s ago, for a request recorded 5 s ago
    const before = reboots(name);
    const r = await rebootOnce(
      e,
      [{ name, requestedAt: Date.now() - 5000 }],
      async () => undefined,
      { ...OPTS, graceMs: 1 },
      never,
    );
    expect(r).toEqual({ back: [name], lost: [] });
    expect(reboots(name)).toBe(before);
  });

  it('resumed after a crash between recording and Salt: a host up since before the request is asked once more after the grace', async () => {
    const name = prod()[3]!;
    minion(name).bootTime = Date.now() - 5 * HOUR;
    const before = reboots(name);
    const recorded: string[][] = [];
    const r = await rebootOnce(
      e,
      [{ name, requestedAt: Date.now() - 2000 }],
      async (n) => void recorded.push(n),
      OPTS,
      never,
    );
    expect(r).toEqual({ back: [name], lost: [] });
    expect(reboots(name)).toBe(before + 1);
    expect(recorded).toEqual([[name]]);
  });

  it('a host that never comes back is reported lost at the deadline, asked once', async () => {
    const name = prod()[4]!;
    const before = reboots(name);
    const r = await rebootOnce(
      e,
      [{ name, requestedAt: null }],
      async () => {
        // Salt's reboot reaches it, but it stays away.
        world.salt.rebootMs = 60_000;
      },
      { ...OPTS, deadlineMs: 800 },
      never,
    );
    world.salt.rebootMs = 300;
    expect(r).toEqual({ back: [], lost: [name] });
    expect(reboots(name)).toBe(before + 1);
  });
});
