/** A real Prometheus (Debian's `prometheus` package) started by a test, scraping the lab's exporters. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './proc.ts';

export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

export interface PromProc {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  /** Stop it (a Prometheus outage); `start()` brings it back on the same port and data. */
  start(): Promise<void>;
  /** Stop and delete its data. */
  dispose(): Promise<void>;
}

export async function startPrometheus(configYaml: string): Promise<PromProc> {
  if (!existsSync(PROMETHEUS_BIN))
    throw new Error(
      `${PROMETHEUS_BIN} not found: install Debian's prometheus package (apt-get install -y prometheus) — .ci/run does`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'spm-prom-'));
  writeFileSync(join(dir, 'prometheus.yml'), configYaml);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let proc!: ChildProcess;
  let log = '';
  const launch = async () => {
    proc = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr?.on('data', (c: Buffer) => (log += c.toString()).length > 20_000 && (log = log.slice(-10_000)));
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      if (proc.exitCode !== null) throw new Error(`prometheus exited (${proc.exitCode}): ${log}`);
      try {
        if ((await fetch(`${url}/-/ready`)).ok) return;
      } catch {
        /* starting */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`prometheus not ready: ${log}`);
  };
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  await launch();
  return {
    url,
    get proc() {
      return proc;
    },
    stop,
    start: launch,
    dispose: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  } as PromProc;
}
