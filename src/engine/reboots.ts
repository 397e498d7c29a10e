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

const uptime = z.object({ since_t: z.number() });

/**
 * Reboot each host once, across crashes: the request time is recorded (`record`) before Salt is
 * asked, and a resumed run compares it with the host's boot time (`status.uptime`) — booted since:
 * done; not answering: still rebooting; booted before a request older than the grace: the request
 * never reached it (a crash between recording and Salt), ask once more. Never re-asks a request of
 * this run. Returns the hosts back up and those still away at the deadline.
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
  if (fresh.length > 0) {
    await record(fresh);
    for (const m of fresh) requested.set(m, Date.now());
    await saltCall(() => e.salt.localAsync(fresh, 'system.reboot'));
  }
  const deadline = Date.now() + o.deadlineMs;
  const back: string[] = [];
  let waiting = hosts.map((h) => h.name);
  for (;;) {
    const r = await e.salt
      .local<unknown>(waiting, 'status.uptime')
      .catch(() => ({ returned: {} as Record<string, unknown>, missing: waiting }));
    const notRebooted: string[] = [];
    for (const m of waiting) {
      const u = uptime.safeParse(r.returned[m]);
      if (!u.success) continue; // not answering: rebooting
      if (u.data.since_t * 1000 >= (requested.get(m) ?? 0) - 1000) back.push(m);
      else notRebooted.push(m);
    }
    const lostRequests = notRebooted.filter(
      (m) => inherited.has(m) && Date.now() - (requested.get(m) ?? Date.now()) > o.graceMs,
    );
    if (lostRequests.length > 0) {
      await record(lostRequests);
      for (const m of lostRequests) {
        requested.set(m, Date.now());
        inherited.delete(m);
      }
      await saltCall(() => e.salt.localAsync(lostRequests, 'system.reboot'));
    }
    const isBack = new Set(back);
    waiting = waiting.filter((m) => !isBack.has(m));
    if (waiting.length === 0) return { back, lost: [] };
    if (Date.now() > deadline) return { back, lost: waiting };
    await sleep(o.pollMs, signal);
  }
}
