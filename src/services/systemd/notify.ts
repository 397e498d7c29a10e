/**
 * systemd supervision for `Type=notify` (sd_notify(3)): READY=1 once the daemon serves, WATCHDOG=1
 * from the event loop every half of `WATCHDOG_USEC`, a `STATUS=` line kept current, STOPPING=1 when
 * shutdown starts. Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) everything
 * is a no-op.
 *
 * How a message is sent. `NOTIFY_SOCKET` names an AF_UNIX *datagram* socket (a path, or `@name`
 * in the abstract namespace), and Node's core cannot open one: `dgram` is UDP only, `net` is
 * stream only, and a native addon (sd-notify, unix-dgram) would be a compiled dependency. So each
 * message is handed to systemd's own `systemd-notify` command, which is installed wherever
 * systemd is (Debian/Ubuntu package `systemd`, RHEL `systemd`):
 *
 * - The sender is a child of the daemon, not its main process, so the unit needs
 *   `NotifyAccess=all` (with `main`, systemd drops the message).
 * - `--pid=<daemon pid>` adds `MAINPID=` (the daemon is the main process whatever wraps it) and,
 *   when privileged, sends the daemon's credentials.
 * - systemd-notify waits (its default since systemd 246: `BARRIER=1`) until the manager has
 *   processed the message, so it cannot be lost because the helper exited before systemd looked
 *   its cgroup up (the known race of `NotifyAccess=all` with short-lived senders).
 * - The watchdog ping is started by a timer on the event loop: a loop blocked for longer than
 *   `WatchdogSec=` sends nothing, and systemd kills and restarts the service.
 * - One helper at a time, in order; what is asked while one runs is merged into the next (the
 *   latest STATUS wins). A ping every 15 s (WatchdogSec=30) costs one ~2 ms process.
 *
 * `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are read once and removed from the
 * environment (sd_notify's `unset_environment`), so the processes the daemon starts afterwards do
 * not inherit them.
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../../logger.ts';

/** What systemd told this process through its environment. */
export interface NotifyEnvironment {
  socket: string;
  /** Half of this is the ping interval; null: no watchdog for us. */
  watchdogUsec: number | null;
}

/**
 * Read systemd's variables and remove them from `env` (children must not inherit them).
 * @example
 * const target = takeNotifyEnvironment(); // { socket: '/run/systemd/notify', watchdogUsec: 30000000 } or null
 */
export function takeNotifyEnvironment(
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
): NotifyEnvironment | null {
  const socket = env.NOTIFY_SOCKET;
  const usec = env.WATCHDOG_USEC;
  const watchdogPid = env.WATCHDOG_PID;
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (!socket || !(socket.startsWith('/') || socket.startsWith('@'))) return null;
  // sd_watchdog_enabled(3): the watchdog is ours only when WATCHDOG_PID is unset or our pid.
  const forUs = watchdogPid === undefined || watchdogPid === '' || Number(watchdogPid) === pid;
  const n = usec !== undefined && /^\d+$/.test(usec) ? Number(usec) : 0;
  return { socket, watchdogUsec: forUs && n > 0 ? n : null };
}

export interface SystemdNotifierOptions {
  logger: Logger;
  /** The helper; `systemd-notify` on PATH unless a test gives another. */
  command?: string;
  pid?: number;
}

/**
 * Sends notify messages through `systemd-notify`, one at a time and in order.
 * @example
 * const n = new SystemdNotifier(target, { logger }); n.send({ READY: '1', STATUS: 'serving' }); await n.idle();
 */
export class SystemdNotifier {
  private pending: Map<string, string> | null = null;
  private running: Promise<void> | null = null;
  private failing = false;
  private readonly command: string;
  private readonly pid: number;
  private readonly target: NotifyEnvironment;
  private readonly o: SystemdNotifierOptions;

  constructor(target: NotifyEnvironment, o: SystemdNotifierOptions) {
    this.target = target;
    this.o = o;
    this.command = o.command ?? 'systemd-notify';
    this.pid = o.pid ?? process.pid;
  }

  /** Queue `fields` (e.g. `{ WATCHDOG: '1' }`); merged into the next message when one is in flight. */
  send(fields: Record<string, string>): void {
    this.pending ??= new Map();
    // Newline-free values: each field is one line of the datagram.
    for (const [k, v] of Object.entries(fields)) this.pending.set(k, v.replace(/[\r\n]+/g, ' '));
    if (!this.running) this.running = this.drain();
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const fields = this.pending;
      this.pending = null;
      await this.run([...fields].map(([k, v]) => `${k}=${v}`));
    }
    this.running = null;
  }

  private run(assignments: string[]): Promise<void> {
    return new Promise((resolve) => {
      execFile(
        this.command,
        [`--pid=${this.pid}`, ...assignments],
        // Only what the helper needs; its barrier waits at most 5 s for the manager.
        {
          env: { NOTIFY_SOCKET: this.target.socket, PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
          timeout: 15_000,
        },
        (err, _stdout, stderr) => {
          if (err) {
            if (!this.failing) {
              const why =
                (err as NodeJS.ErrnoException).code === 'ENOENT'
                  ? `${this.command} is not installed (package systemd)`
                  : stderr.trim() || err.message;
              this.o.logger.error(
                { socket: this.target.socket, err: why },
                'systemd notification failed (said once until one succeeds): systemd may time the start out or the watchdog kill the service',
              );
            }
            this.failing = true;
          } else if (this.failing) {
            this.failing = false;
            this.o.logger.info('systemd notifications are delivered again');
          }
          resolve();
        },
      );
    });
  }
}

export interface SupervisionOptions {
  logger: Logger;
  /** The STATUS= line (e.g. "serving · 12 entries in memory · lanes 1/2 busy"). */
  status: () => string;
  /** How often the status line is looked at (sent when it changed). Default 10 s. */
  statusEveryMs?: number;
  env?: NodeJS.ProcessEnv;
  command?: string;
}

/**
 * The daemon is ready: send READY=1 and the status, start the watchdog pings and status refreshes.
 * Returns the release for the daemon's cleanup list: STOPPING=1 first thing at shutdown.
 * @example
 * releasers.add('systemd', superviseBySystemd({ logger, status: () => metrics.statusLine() }));
 */
export function superviseBySystemd(o: SupervisionOptions): () => Promise<void> {
  const target = takeNotifyEnvironment(o.env ?? process.env);
  if (!target) return async () => undefined;
  const notifier = new SystemdNotifier(target, { logger: o.logger, ...(o.command ? { command: o.command } : {}) });
  const statusNow = () => {
    try {
      return o.status();
    } catch {
      return 'serving';
    }
  };
  let lastStatus = statusNow();
  notifier.send({ READY: '1', STATUS: lastStatus });
  const timers: NodeJS.Timeout[] = [];
  if (target.watchdogUsec !== null) {
    const everyMs = Math.max(100, Math.floor(target.watchdogUsec / 2000));
    timers.push(setInterval(() => notifier.send({ WATCHDOG: '1' }), everyMs));
  }
  timers.push(
    setInterval(() => {
      const s = statusNow();
      if (s === lastStatus) return;
      lastStatus = s;
      notifier.send({ STATUS: s });
    }, o.statusEveryMs ?? 10_000),
  );
  for (const t of timers) t.unref();
  o.logger.info(
    { socket: target.socket, watchdogMs: target.watchdogUsec === null ? null : target.watchdogUsec / 1000 },
    'systemd notified: ready',
  );
  return async () => {
    for (const t of timers) clearInterval(t);
    notifier.send({ STOPPING: '1', STATUS: 'stopping' });
    // Delivered before the process exits, but never holding the shutdown for long.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([notifier.idle(), new Promise<void>((r) => (timer = setTimeout(r, 6000)))]);
    clearTimeout(timer);
  };
}
