/** Reboots through Salt: does a host need one, and rebooting production hosts exactly once across crashes. */
import { z } from 'zod';
import { saltCall, type EngineDeps } from './deps.ts';
import { sleep } from './timing.ts';

/** Does the host need a reboot? Salt's check (Debian/Ubuntu flag file, RHEL needs-restarting). One call. */
export async function rebootRequired(
  e: EngineDeps,
  minions: string[],
): Promise<{ required: Map<string, boolean>; missing: string[] }> {
  const cmd =
    'if [ -f /var/run/reboot-required ] || ' +
    '{ command -v needs-restarting >/dev/null 2>&1 && ! needs-restarting -r >/dev/null 2>&1; }; ' +
    'then echo yes; else echo no; fi';
  const r = await saltCall(() => e.salt.local<string>(minions, 'cmd.run', [cmd], { python_shell: true }));
  return {
    required: new Map(Object.entries(r.returned).map(([m, out]) => [m, String(out).trim() === 'yes'])),
    missing: r.missing,
  };
}

/** Salt's `status.uptime`: `seconds` is the host's own uptime (`/proc/uptime`, truncated). */
const uptime = z.object({ seconds: z.number().nonnegative() });

/**
 * How much later than its request a host may answer and still count as rebooted since: the
 * database clock's skew estimate moves by milliseconds between the request and the check; a host
 * does not answer Salt within two seconds of its boot.
 */
const BOOTED_SINCE_TOLERANCE_MS = 2000;

/**
 * Has the host booted since the request? Decided by durations only — the host's uptime against
 * the time since the request on the one clock — never by comparing the host's boot time with our
 * clock: a host whose clock is behind would look never rebooted (and be rebooted again).
 */
export function bootedSince(uptimeSeconds: number, requestedAt: number, now: number): boolean {
  return uptimeSeconds * 1000 <= now - requestedAt + BOOTED_SINCE_TOLERANCE_MS;
}

/**
 * Reboot each host once, across crashes: the request time is recorded (`record`) before Salt is
 * asked, and a resumed run compares the host's uptime (`status.uptime`) with the time since that
 * request (`bootedSince`) — booted since: done; not answering: still rebooting; up since before a
 * request older than the grace: the request never reached it (a crash between recording and
 * Salt), ask once more. Never re-asks a request of this run. Returns the hosts back up and those
 * still away at the deadline.
 */
export async function rebootOnce(
  e: EngineDeps,
  hosts: { name: string; requestedAt: number | null }[],
  record: (names: string[]) => Promise<void>,
  o: { pollMs: number; deadlineMs: number; graceMs: number },
  signal: AbortSignal,
): Promise<{ back: string[]; lost: string[] }> {
  const requested = new Map(hosts.map((h) => [h.name, h.requestedAt]));
  const inherited = new Set(hosts.filter((h) => h.requestedAt !== null).map((h) => h.name));
  const fresh = hosts.filter((h) => h.requestedAt === null).map((h) => h.name);
  // Recorded (database now()) before this stamp, and this stamp before Salt is asked: the host
  // cannot have booted for the request before it.
  const ask = async (names: string[]) => {
    await record(names);
    const at = e.clock.now();
    for (const m of names) requested.set(m, at);
    await saltCall(() => e.salt.localAsync(names, 'system.reboot'));
  };
  if (fresh.length > 0) await ask(fresh);
  const deadline = performance.now() + o.deadlineMs;
  const back: string[] = [];
  let waiting = hosts.map((h) => h.name);
  for (;;) {
    const r = await e.salt
      .local<unknown>(waiting, 'status.uptime')
      .catch(() => ({ returned: {} as Record<string, unknown>, missing: waiting }));
    const now = e.clock.now();
    const notRebooted: string[] = [];
    for (const m of waiting) {
      const u = uptime.safeParse(r.returned[m]);
      if (!u.success) continue; // not answering: rebooting
      if (bootedSince(u.data.seconds, requested.get(m) ?? 0, now)) back.push(m);
      else notRebooted.push(m);
    }
    const lostRequests = notRebooted.filter((m) => inherited.has(m) && now - (requested.get(m) ?? now) > o.graceMs);
    if (lostRequests.length > 0) {
      for (const m of lostRequests) inherited.delete(m);
      await ask(lostRequests);
    }
    const isBack = new Set(back);
    waiting = waiting.filter((m) => !isBack.has(m));
    if (waiting.length === 0) return { back, lost: [] };
    if (performance.now() > deadline) return { back, lost: waiting };
    await sleep(o.pollMs, signal);
  }
}
