/**
 * `npm start` and `npm run lab` as a user or a supervisor runs them: the pid they started is npm's,
 * npm forwards SIGTERM/SIGINT to its child, and the scripts `exec` (sh → run-node.sh → node), so
 * that child is the daemon itself. SIGTERM to npm's pid stops the daemon and its embedded
 * PostgreSQL (exit 0, no process of its process group left); a lab whose PostgreSQL port is taken
 * fails and leaves nothing running (its Prometheus included).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitForHttp, type Child } from './helpers/proc.ts';

const dirs: string[] = [];
const groups: number[] = [];
afterAll(() => {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone, as it should be */
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `npm run <script>` in a process group of its own (its pid is the group's id). */
function startNpm(script: string[], env: Record<string, string>): Child {
  const proc = spawn('npm', script, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  groups.push(proc.pid!);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, stdout: () => out, stderr: () => err, exited };
}

function processes(): { pid: number; ppid: number; pgid: number; args: string }[] {
  return execFileSync('ps', ['-eo', 'pid=,ppid=,pgid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(.*)$/.exec(l)!;
      return { pid: Number(m[1]), ppid: Number(m[2]), pgid: Number(m[3]), args: m[4]! };
    });
}
/** What is left of npm's process group, or of anything naming `dir`. */
const leftovers = (pgid: number, dir: string) =>
  processes()
    .filter((p) => p.pgid === pgid || p.args.includes(dir))
    .map((p) => `${p.pid} ${p.args}`);

async function tempDir(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'spm-npm-'));
  chmodSync(dir, 0o755); // the cluster runs as `postgres` when tests run as root
  dirs.push(dir);
  return dir;
}

describe('npm start', () => {
  it("npm's child is the daemon (no shell between); SIGTERM to npm's pid: exit 0, daemon and PostgreSQL gone", async () => {
    const dir = await tempDir();
    const port = await freePort();
    const npm = startNpm(['start'], {
      EMBEDDED_PG_DIR: path.join(dir, 'pg'),
      EMBEDDED_PG_PORT: String(await freePort()),
      HTTP_PORT: String(port),
      INSTANCE_ID: `npm-start-${process.pid}`,
      LOG_LEVEL: 'info',
    });
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 90_000, npm);
    const pid = npm.proc.pid!;
    const children = processes().filter((p) => p.ppid === pid);
    expect(children.map((c) => c.args)).toEqual(['node src/main.ts serve']);
    // The daemon says its pid at start: npm's only child.
    const starting = npm
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; pid?: number })
      .find((l) => l.msg === 'spm-orchestrator starting');
    expect(starting?.pid).toBe(children[0]!.pid);
    expect(leftovers(pid, dir).some((l) => l.includes('postgres'))).toBe(true);

    const t0 = Date.now();
    process.kill(pid, 'SIGTERM');
    expect(await npm.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(npm.stdout()).toContain('"msg":"stopped"');
    expect(leftovers(pid, dir)).toEqual([]);
  }, 120_000);
});

describe('npm run lab', () => {
  let blocker: Server | undefined;
  afterAll(() => blocker?.close());

  it('its PostgreSQL port is taken: one line, exit 1, and nothing it started is left (its Prometheus included)', async () => {
    const dir = await tempDir();
    const pgPort = await freePort();
    blocker = createServer().listen(pgPort, '127.0.0.1');
    await new Promise((r) => blocker!.once('listening', r));
    const npm = startNpm(['run', 'lab'], {
      LAB_PG_DIR: path.join(dir, 'pg'),
      LAB_PG_PORT: String(pgPort),
      HTTP_PORT: String(await freePort()),
      LAB_PROMETHEUS_DIR: path.join(dir, 'prom'),
      INSTANCE_ID: `npm-lab-${process.pid}`,
    });
    const { code } = await npm.exited;
    expect(code).toBe(1);
    expect(npm.stderr()).toMatch(/^spm-orchestrator: lab: embedded PostgreSQL did not start \(port \d+ is in use/m);
    expect(npm.stdout()).toMatch(/^lab: starting \(pid \d+;/m);
    // The lab had started its Prometheus (when installed) before the database failed.
    if (existsSync('/usr/bin/prometheus') && !process.env.PROMETHEUS_BIN)
      expect(existsSync(path.join(dir, 'prom', 'prometheus.yml'))).toBe(true);
    expect(leftovers(npm.proc.pid!, dir)).toEqual([]);
  }, 120_000);
});
