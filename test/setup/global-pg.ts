/**
 * One PostgreSQL server for the whole test run: `TEST_DATABASE_ADMIN_URL` when given (a superuser
 * URL of a real server, e.g. Debian's postgresql), else a throwaway embedded cluster. A template
 * database with every migration applied lets each test file get its own database in milliseconds.
 */
import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { migrate } from '../../src/persistence/migrate.ts';
import { startScratchPostgres } from '../helpers/pgServer.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

export const TEMPLATE_DB = 'spm_template';
let stopServer: (() => Promise<void>) | undefined;

export async function setup(project: TestProject) {
  const server = await startScratchPostgres('test');
  stopServer = server.stop;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
  await admin.end();
  const u = new URL(server.adminUrl);
  u.pathname = `/${TEMPLATE_DB}`;
  await migrate(u.toString());
  project.provide('pgAdminUrl', server.adminUrl);
}

export async function teardown() {
  await stopServer?.();
}
