/**
 * The daemon as operators run it: a real process, the embedded database, signals.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startChild, waitForHttp } from './helpers/proc.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function postgresProcessesFor(dataDir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('postgres') && l.includes(dataDir));
}

describe('serve with the embedded database', () => {
  it('answers health, then stops on SIGTERM within 5 s with exit code 0 and no leftover postgres', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spm-daemon-'));
    chmodSync(dir, 0o755); // the cluster runs as `postgres` when tests run as root
    dirs.push(dir);
    const dataDir = path.join(dir, 'pg');
    const port = await freePort();
    const child = startChild(['serve'], {
      EMBEDDED_PG_DIR: dataDir,
      EMBEDDED_PG_PORT: String(await freePort()),
      HTTP_PORT: String(port),
      LOG_LEVEL: 'info',
    });
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 60_000, child);
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/health`);
    expect(await res.json()).toMatchObject({ status: 'healthy' });
    expect(postgresProcessesFor(dataDir).length).toBeGreaterThan(0);

    const t0 = Date.now();
    child.proc.kill('SIGTERM');
    const { code } = await child.exited;
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
    // Logs are JSON lines on stdout.
    const lines = child
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['spm-orchestrator serving', 'shutting down', 'stopped']),
    );
  });

  it('restarts over a cluster left running by a daemon killed with SIGKILL', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spm-daemon-'));
    chmodSync(dir, 0o755); // the cluster runs as `postgres` when tests run as root
    dirs.push(dir);
    const dataDir = path.join(dir, 'pg');
    const pgPort = String(await freePort());
    const port = await freePort();
    const env = { EMBEDDED_PG_DIR: dataDir, EMBEDDED_PG_PORT: pgPort, HTTP_PORT: String(port) };
    const first = startChild(['serve'], env);
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 60_000, first);
    first.proc.kill('SIGKILL');
    await first.exited;
    expect(postgresProcessesFor(dataDir).length).toBeGreaterThan(0); // the orphan

    const second = startChild(['serve'], env);
    await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 60_000, second);
    second.proc.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(postgresProcessesFor(dataDir)).toEqual([]);
  });
});

describe('bad configuration', () => {
  it('exits non-zero naming each variable, without a stack trace', async () => {
    const child = startChild(['serve'], { UYUNI_SYNC_WORKERS: 'abc', DATABASE_URL: 'postgres//broken' });
    const { code } = await child.exited;
    expect(code).toBe(78);
    const err = child.stderr();
    expect(err).toMatch(/UYUNI_SYNC_WORKERS: expected an integer from 1 to 100, got "abc"/);
    expect(err).toMatch(/DATABASE_URL: expected postgres:\/\//);
    expect(err).not.toMatch(/\bat .+:\d+:\d+/);
  });

  it('an unreachable database is one clear line and exit 1', async () => {
    const port = await freePort();
    const child = startChild(['migrate'], { DATABASE_URL: `postgres://u:p@127.0.0.1:${port}/x` });
    const { code } = await child.exited;
    expect(code).toBe(1);
    expect(child.stderr()).toMatch(/^spm-orchestrator: migrate: .*ECONNREFUSED|connect/m);
    expect(child.stderr()).not.toMatch(/\bat .+:\d+:\d+/);
  });
});
