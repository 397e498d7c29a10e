/**
 * Schema migrations: numbered files `sql/NNNN_name.sql`, applied in order.
 *
 * Safe with many replicas starting at once: the whole run happens in one transaction that first
 * takes a transaction-scoped advisory lock (released at COMMIT, so it also works behind a
 * transaction pooler). The second process waits, then sees every migration applied and does nothing.
 * A migration file edited after it was applied, or a database newer than this build, is refused.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../sql');
/** Arbitrary constant: `hashtext('spm-orchestrator:migrate')` would also do, a literal is clearer. */
const MIGRATION_LOCK_KEY = 7_240_117_001;
/** A migration's statements may take this long (pg's process-wide query timeout is for the pool). */
const MIGRATION_TIMEOUT_MS = 6 * 3_600_000;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Read and validate the migration files (names `NNNN_snake_case.sql`, contiguous versions). */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const out: Migration[] = [];
  for (const file of files) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (m === null) throw new Error(`migration file name ${file} does not match NNNN_name.sql`);
    const sql = readFileSync(path.join(dir, file), 'utf8');
    out.push({
      version: Number(m[1]),
      name: m[2] ?? '',
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  out.forEach((mig, i) => {
    if (mig.version !== i + 1)
      throw new Error(
        `migrations must be numbered 0001, 0002, … without gaps; found ${mig.version} at position ${i + 1}`,
      );
  });
  return out;
}

export interface MigrateResult {
  applied: number[];
  current: number;
}

/**
 * Apply every pending migration.
 * @example
 * const { applied } = await migrate(databaseUrl);
 */
export async function migrate(url: string, opts: { dir?: string } = {}): Promise<MigrateResult> {
  const migrations = loadMigrations(opts.dir);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; checksum: string; name: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
    const known = new Map(migrations.map((m) => [m.version, m]));
    for (const row of rows) {
      const mig = known.get(row.version);
      if (mig === undefined)
        throw new Error(
          `database is at migration ${row.version} (${row.name}), newer than this build knows; refusing to run an older daemon against it`,
        );
      if (mig.checksum !== row.checksum)
        throw new Error(
          `migration ${String(row.version).padStart(4, '0')}_${row.name}.sql was modified after it was applied; restore the original and add a new migration instead`,
        );
    }
    const done = new Set(rows.map((r) => r.version));
    const applied: number[] = [];
    for (const mig of migrations) {
      if (done.has(mig.version)) continue;
      try {
        // DDL on a large table may run long: no client-side timeout for the migration itself.
        await client.query({ text: mig.sql, query_timeout: MIGRATION_TIMEOUT_MS } as never);
      } catch (raw) {
        throw new Error(
          `migration ${String(mig.version).padStart(4, '0')}_${mig.name}.sql failed: ${(raw as Error).message}`,
          { cause: raw },
        );
      }
      await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        mig.version,
        mig.name,
        mig.checksum,
      ]);
      applied.push(mig.version);
    }
    await client.query('COMMIT');
    return { applied, current: migrations.length === 0 ? 0 : Math.max(...migrations.map((m) => m.version)) };
  } catch (raw) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw raw;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The highest applied migration, or 0 (used by health and doctor). */
export async function currentSchemaVersion(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rows } = await client.query<{ v: number | null }>(
      `SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN 0 ELSE (SELECT coalesce(max(version), 0) FROM schema_migrations) END AS v`,
    );
    return rows[0]?.v ?? 0;
  } finally {
    await client.end().catch(() => undefined);
  }
}
