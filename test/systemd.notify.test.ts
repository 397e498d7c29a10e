/**
 * Type=notify without systemd: a notify socket of the test's own (a Python datagram server that
 * records each message with its sender's pid, answers systemd-notify's barrier by closing the fd
 * it passes, and on READY=1 checks at once whether the daemon's HTTP port accepts connections),
 * and the real daemon (`node src/main.ts serve`) with NOTIFY_SOCKET pointing at it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemdNotifier, superviseBySystemd, takeNotifyEnvironment } from '../src/services/systemd/notify.ts';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startChild, waitUntil } from './helpers/proc.ts';

const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'pass']).status === 0);
const HAS_NOTIFY = spawnSync('systemd-notify', ['--version']).status === 0;

const SERVER = String.raw`
import array, json, os, socket, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\0' + addr[1:] if addr.startswith('@') else addr)
print(json.dumps({'listening': True}), flush=True)
while True:
    data, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(64) + socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i')
            fds.frombytes(payload[:len(payload) - len(payload) % 4])
            for fd in fds:
                os.close(fd)  # systemd-notify's BARRIER=1 waits for this
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(payload[0:4], sys.byteorder)
    port_open = None
    if port and b'READY=1' in data.split(b'\n'):
        c = socket.socket()
        try:
            c.connect(('127.0.0.1', port))
            port_open = True
        except OSError:
            port_open = False
        finally:
            c.close()
    print(json.dumps({'t': time.time(), 'pid': pid, 'fields': data.decode().split('\n'), 'port_open': port_open}), flush=True)
`;

interface Datagram {
  t: number;
  pid: number | null;
  fields: string[];
  port_open: boolean | null;
}

function startNotifySocket(
  addr: string,
  port = 0,
): { proc: ChildProcess; messages: () => Datagram[]; ready: Promise<void> } {
  const proc = spawn(PYTHON!, ['-c', SERVER, addr, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('"listening"')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`notify socket server exited ${code}: ${err}`)));
  });
  ready.catch(() => undefined);
  const messages = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{"t"'))
      .map((l) => JSON.parse(l) as Datagram);
  return { proc, messages, ready };
}

const withField = (ms: Datagram[], f: string) => ms.filter((m) => m.fields.includes(f));
const dirs: string[] = [];
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('takeNotifyEnvironment (sd_notify / sd_watchdog_enabled rules)', () => {
  it('reads the variables once and removes them, so that children do not inherit them', () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: '/run/systemd/notify',
      WATCHDOG_USEC: '30000000',
      WATCHDOG_PID: '42',
      OTHER: 'x',
    };
    expect(takeNotifyEnvironment(env, 42)).toEqual({ socket: '/run/systemd/notify', watchdogUsec: 30_000_000 });
    expect(env).toEqual({ OTHER: 'x' });
  });

  it('no socket: null (everything a no-op); a watchdog meant for another pid, or none: no pings', () => {
    expect(takeNotifyEnvironment({}, 1)).toBeNull();
    expect(takeNotifyEnvironment({ NOTIFY_SOCKET: 'relative' }, 1)).toBeNull();
    expect(
      takeNotifyEnvironment({ NOTIFY_SOCKET: '@abstract', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '7' }, 8),
    ).toEqual({ socket: '@abstract', watchdogUsec: null });
    expect(takeNotifyEnvironment({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: 'soon' }, 8)).toEqual({
      socket: '/x',
      watchdogUsec: null,
    });
  });

  it('superviseBySystemd without NOTIFY_SOCKET sends nothing and its release resolves', async () => {
    const release = superviseBySystemd({
      logger: pino({ level: 'silent' }),
      status: () => 'x',
      env: {},
      command: '/nonexistent/systemd-notify',
    });
    await release();
  });
});

describe.skipIf(!PYTHON || !HAS_NOTIFY)('sd_notify through systemd-notify, against a notify socket of the test', () => {
  it('an abstract socket (@name): the fields arrive in one datagram, merged while one is in flight', async () => {
    const name = `@spm-notify-test-${process.pid}-${Date.now()}`;
    const server = startNotifySocket(name);
    procs.push(server.proc);
    await server.ready;
    const n = new SystemdNotifier({ socket: name, watchdogUsec: null }, { logger: pino({ level: 'silent' }) });
    n.send({ STATUS: 'first' });
    n.send({ WATCHDOG: '1', STATUS: 'second\nline' });
    n.send({ STATUS: 'third' });
    await n.idle();
    await waitUntil(async () => server.messages().length >= 2, 5000, 'two datagrams');
    const [a, b] = server.messages().filter((m) => !m.fields.includes('BARRIER=1'));
    expect(a!.fields).toEqual([`MAINPID=${process.pid}`, 'STATUS=first']);
    expect(b!.fields).toEqual([`MAINPID=${process.pid}`, 'WATCHDOG=1', 'STATUS=third']);
  });

  it('the pings come from the event loop: a blocked loop sends none (systemd would kill it after WatchdogSec)', async () => {
    const name = `@spm-notify-block-${process.pid}-${Date.now()}`;
    const server = startNotifySocket(name);
    procs.push(server.proc);
    await server.ready;
    const release = superviseBySystemd({
      logger: pino({ level: 'silent' }),
      status: () => 'ok',
      env: { NOTIFY_SOCKET: name, WATCHDOG_USEC: '400000' },
    });
    await waitUntil(async () => withField(server.messages(), 'WATCHDOG=1').length >= 2, 5000, 'pings');
    const blockedAt = Date.now() / 1000;
    while (Date.now() / 1000 - blockedAt < 1.5); // the loop is stuck
    const unblockedAt = Date.now() / 1000;
    await waitUntil(
      async () => withField(server.messages(), 'WATCHDOG=1').some((p) => p.t > unblockedAt),
      5000,
      'a ping after the block',
    );
    await release();
    const pings = withField(server.messages(), 'WATCHDOG=1');
    // Nothing was even spawned while the loop was stuck (a ping in flight may land just after it froze).
    expect(pings.filter((p) => p.t > blockedAt + 0.3 && p.t < unblockedAt)).toEqual([]);
    expect(withField(server.messages(), 'READY=1')).toHaveLength(1);
    expect(withField(server.messages(), 'STOPPING=1')).toHaveLength(1);
  });

  describe('the daemon (node src/main.ts serve)', () => {
    let t: Awaited<ReturnType<typeof createTestDatabase>>;
    beforeAll(async () => {
      t = await createTestDatabase();
    });
    afterAll(async () => {
      await t?.drop();
    });

    it('READY=1 once the port accepts connections, WATCHDOG=1 every WATCHDOG_USEC/2, a STATUS line, STOPPING=1 on SIGTERM', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'spm-notify-'));
      dirs.push(dir);
      const socket = path.join(dir, 'notify.sock');
      const port = await freePort();
      const server = startNotifySocket(socket, port);
      procs.push(server.proc);
      await server.ready;
      const child = startChild(['serve'], {
        DATABASE_URL: t.url,
        HTTP_PORT: String(port),
        INSTANCE_ID: `notify-${process.pid}`,
        LOG_LEVEL: 'info',
        NOTIFY_SOCKET: socket,
        WATCHDOG_USEC: '1000000',
      });
      procs.push(child.proc);
      await waitUntil(async () => withField(server.messages(), 'READY=1').length > 0, 60_000, 'READY=1', {
        child: () => child,
      });
      const [ready] = withField(server.messages(), 'READY=1');
      // The notify server tried the port the moment READY=1 arrived: it was bound already.
      expect(ready!.port_open).toBe(true);
      expect(ready!.fields).toContain(`MAINPID=${child.proc.pid}`);
      expect(ready!.fields.find((f) => f.startsWith('STATUS='))).toMatch(
        /^STATUS=0 patch actors in memory, no test lanes$/,
      );
      // Migrations and hydration came before it.
      const logs = child
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string });
      const order = logs.map((l) => l.msg);
      expect(order.indexOf('actors hydrated')).toBeGreaterThanOrEqual(0);
      expect(order.indexOf('actors hydrated')).toBeLessThan(order.indexOf('spm-orchestrator serving'));
      expect(order).toContain('systemd notified: ready');
      expect(logs.find((l) => l.msg === 'spm-orchestrator starting')).toMatchObject({ pid: child.proc.pid });

      // Pings every 500 ms (WATCHDOG_USEC = 1 s), from the event loop.
      await waitUntil(async () => withField(server.messages(), 'WATCHDOG=1').length >= 4, 10_000, 'four WATCHDOG=1');
      const pings = withField(server.messages(), 'WATCHDOG=1');
      const gaps = pings.slice(1).map((p, i) => p.t - pings[i]!.t);
      expect(Math.min(...gaps)).toBeGreaterThan(0.2);
      expect(Math.max(...gaps)).toBeLessThan(1.5);
      expect(pings.every((p) => p.t > ready!.t)).toBe(true);

      child.proc.kill('SIGTERM');
      expect((await child.exited).code).toBe(0);
      const stopping = withField(server.messages(), 'STOPPING=1');
      expect(stopping).toHaveLength(1);
      expect(stopping[0]!.fields).toContain('STATUS=stopping');
      // No ping after STOPPING=1 was sent.
      expect(withField(server.messages(), 'WATCHDOG=1').every((p) => p.t <= stopping[0]!.t)).toBe(true);
    });

    it('without NOTIFY_SOCKET nothing is sent and no systemd-notify runs', async () => {
      const port = await freePort();
      const child = startChild(['serve'], {
        DATABASE_URL: t.url,
        HTTP_PORT: String(port),
        INSTANCE_ID: `notify-off-${process.pid}`,
        LOG_LEVEL: 'info',
        NOTIFY_SOCKET: '',
        WATCHDOG_USEC: '',
      });
      procs.push(child.proc);
      await waitUntil(async () => child.stdout().includes('spm-orchestrator serving'), 60_000, 'serving', {
        child: () => child,
      });
      child.proc.kill('SIGTERM');
      expect((await child.exited).code).toBe(0);
      expect(child.stdout()).not.toContain('systemd notified');
      expect(child.stderr()).not.toContain('systemd');
    });
  });
});
