/**
 * One PostgreSQL server for the whole test run: `TEST_DATABASE_ADMIN_URL` when given (a superuser
 * URL of a real server, e.g. Debian's postgresql), else a throwaway embedded cluster. A template
 * database with every migration applied lets each test file get its own database in milliseconds.
 */
import { rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { pino } from 'pino';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/persistence/embedded.ts';
import { migrate } from '../../src/persistence/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

export const TEMPLATE_DB = 'spm_template';
let embedded: EmbeddedPostgres | undefined;

export async function setup(project: TestProject) {
  let adminUrl = process.env.TEST_DATABASE_ADMIN_URL;
  if (!adminUrl) {
    const dir = `./var/test-pg-${process.pid}`;
    embedded = await startEmbeddedPostgres({
      dir,
      port: 54000 + (process.pid % 1000),
      database: 'postgres',
      logger: pino({ level: 'warn' }),
      // Throwaway cluster: durability of the test server itself is not under test.
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400' },
    });
    adminUrl = embedded.adminUrl;
  }
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  await admin.end();
  const u = new URL(adminUrl);
  u.pathname = `/${TEMPLATE_DB}`;
  await migrate(u.toString());
  project.provide('pgAdminUrl', adminUrl);
}

export async function teardown() {
  if (embedded) {
    await embedded.stop();
    rmSync(`./var/test-pg-${process.pid}`, { recursive: true, force: true });
    rmSync(`./var/test-pg-${process.pid}.secret`, { force: true });
  }
}
