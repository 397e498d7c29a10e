/** A PostgreSQL server for standalone harnesses (chaos, bench): TEST_DATABASE_ADMIN_URL, or a throwaway embedded cluster. */
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { startEmbeddedPostgres } from '../../src/persistence/embedded.ts';
import { migrate } from '../../src/persistence/migrate.ts';

export async function startScratchPostgres(
  tag: string,
  opts: { durable?: boolean } = {},
): Promise<{ adminUrl: string; stop: () => Promise<void> }> {
  if (process.env.TEST_DATABASE_ADMIN_URL)
    return { adminUrl: process.env.TEST_DATABASE_ADMIN_URL, stop: async () => undefined };
  const dir = `./var/${tag}-pg-${process.pid}`;
  const e = await startEmbeddedPostgres({
    dir,
    port: 55000 + (process.pid % 1000),
    database: 'postgres',
    logger: pino({ level: 'warn' }),
    settings: opts.durable
      ? { max_connections: '300', shared_buffers: '256MB' }
      : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400' },
  });
  return {
    adminUrl: e.adminUrl,
    stop: async () => {
      await e.stop();
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}.secret`, { force: true });
    },
  };
}

/** Create a migrated database on the server; returns its URL. */
export async function createMigratedDatabase(adminUrl: string, prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  await migrate(u.toString());
  return u.toString();
}
