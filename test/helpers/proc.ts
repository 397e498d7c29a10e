/** Helpers to run the real daemon as a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node src/main.ts <args>` (the CLI), or another entry point given as `{ entry }`. */
export function startChild(args: string[], env: Record<string, string>, o: { entry?: string } = {}): Child {
  const argv = [o.entry ?? 'src/main.ts', ...args];
  const proc = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { proc, stdout: () => out, stderr: () => err, exited };
}

export async function waitForHttp(url: string, timeoutMs: number, child?: Child): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child && child.proc.exitCode !== null)
      throw new Error(`child exited early (${child.proc.exitCode}): ${child.stderr()}${child.stdout().slice(-2000)}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not answering after ${timeoutMs} ms${child ? `: ${child.stderr()}` : ''}`);
}

/**
 * Poll `fn` until it is true; on time-out the error names what was awaited and, given the daemon,
 * ends with its last output.
 */
export async function waitUntil(
  fn: () => Promise<boolean>,
  ms: number,
  what: string,
  o: { child?: () => Child | undefined; pollMs?: number } = {},
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
  }
  const c = o.child?.();
  throw new Error(
    `timed out waiting for ${what}${c ? `\n${c.stderr().slice(-2000)}\n${c.stdout().slice(-3000)}` : ''}`,
  );
}
