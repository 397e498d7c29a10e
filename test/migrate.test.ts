import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'slonik';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MIGRATIONS_DIR, loadMigrations, migrate } from '../src/persistence/migrate.ts';
import { createTestDatabase } from './helpers/db.ts';

const run = promisify(execFile);
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function emptyDb() {
  const t = await createTestDatabase({ migrated: false });
  cleanups.push(t.drop);
  return t;
}

describe('migrations', () => {
  it('creates the ten tables, the three views and the actor tables', async () => {
    const { url, db } = await emptyDb();
    const res = await migrate(url);
    expect(res.applied).toEqual(loadMigrations().map((m) => m.version));
    const tables = await db.anyFirst(sql.type(z.object({ t: z.string() }))`
      SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`);
    for (const t of [
      'errata_cache',
      'patch_risk_profile',
      'patch_test_queue',
      'patch_tests',
      'patch_test_phases',
      'patch_approvals',
      'patch_deployments',
      'patch_rollbacks',
      'orchestrator_notifications',
      'orchestrator_config',
      'patch_transitions',
      'timers',
      'effects',
      'api_tokens',
      'idempotency_keys',
      'patch_deployment_systems',
    ]) {
      expect(tables).toContain(t);
    }
    const views = await db.anyFirst(sql.type(z.object({ t: z.string() }))`
      SELECT table_name AS t FROM information_schema.views WHERE table_schema = 'public'`);
    expect([...views].sort()).toEqual(['v_daily_stats', 'v_pending_approvals', 'v_queue_details']);
    const configKeys = await db.anyFirst(
      sql.type(z.object({ k: z.string() }))`SELECT key AS k FROM orchestrator_config`,
    );
    expect(configKeys).toEqual(
      expect.arrayContaining(['score_weights', 'test_thresholds', 'notification_config', 'test_systems']),
    );
  });

  it('is a no-op the second time', async () => {
    const { url, db } = await emptyDb();
    await migrate(url);
    const again = await migrate(url);
    expect(again.applied).toEqual([]);
    expect(
      await db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM schema_migrations`),
    ).toBe(loadMigrations().length);
  });

  it('five processes migrating one empty database at once all succeed and the schema is created once', async () => {
    const { url, db } = await emptyDb();
    const procs = Array.from({ length: 5 }, () =>
      run(process.execPath, ['src/main.ts', 'migrate'], {
        env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' },
        timeout: 60_000,
      }),
    );
    const results = await Promise.allSettled(procs);
    for (const r of results) {
      expect(r.status).toBe('fulfilled');
      if (r.status === 'fulfilled') expect(r.value.stdout).toMatch(/schema up to date/);
    }
    expect(
      await db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM schema_migrations`),
    ).toBe(loadMigrations().length);
    expect(
      await db.oneFirst(
        sql.type(
          z.object({ n: z.number() }),
        )`SELECT count(*)::int AS n FROM orchestrator_config WHERE key = 'score_weights'`,
      ),
    ).toBe(1);
  });

  it('refuses a migration file edited after it was applied', async () => {
    const { url } = await emptyDb();
    const dir = mkdtempSync(path.join(tmpdir(), 'spm-mig-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    await migrate(url, { dir });
    appendFileSync(path.join(dir, '0001_initial.sql'), '\n-- edited\n');
    await expect(migrate(url, { dir })).rejects.toThrow(/0001_initial\.sql was modified after it was applied/);
  });

  it('rolls back a failing migration completely', async () => {
    const { url, db } = await emptyDb();
    const dir = mkdtempSync(path.join(tmpdir(), 'spm-mig-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const next = String(loadMigrations().length + 1).padStart(4, '0');
    appendFileSync(path.join(dir, `${next}_broken.sql`), 'CREATE TABLE ok_then (id int); SELECT no_such_function();');
    await expect(migrate(url, { dir })).rejects.toThrow(new RegExp(`${next}_broken\\.sql failed`));
    const reg = await db.oneFirst(
      sql.type(z.object({ r: z.string().nullable() }))`SELECT to_regclass('patch_test_queue')::text AS r`,
    );
    expect(reg).toBeNull();
  });
});
