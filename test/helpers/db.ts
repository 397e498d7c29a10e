/**
 * Per-test-file databases on the run's PostgreSQL server (see `test/setup/global-pg.ts`).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createDb, type Db } from '../../src/persistence/db.ts';

export function adminUrl(): string {
  return inject('pgAdminUrl');
}

export function urlFor(database: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${database}`;
  return u.toString();
}

async function adminQuery(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/**
 * A fresh database: migrated (cloned from the template) or empty.
 * @example
 * const { url, db, drop } = await createTestDatabase();
 */
export async function createTestDatabase(
  opts: { migrated?: boolean } = {},
): Promise<{ name: string; url: string; db: Db; drop: () => Promise<void> }> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  await adminQuery(
    opts.migrated === false ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE spm_template`,
  );
  const url = urlFor(name);
  const db = await createDb({ url, poolMax: 10 });
  return {
    name,
    url,
    db,
    drop: async () => {
      await db.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
