/**
 * Open the database for any command: `DATABASE_URL` (or `DB_*`) when configured, else the embedded
 * cluster under `EMBEDDED_PG_DIR`. Registers its own releases.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Releasers } from '../releasers.ts';
import { createDb, type Db } from './db.ts';
import { startEmbeddedPostgres } from './embedded.ts';

export interface OpenDatabase {
  url: string;
  db: Db;
  embedded: boolean;
}

export async function openDatabase(config: Config, logger: Logger, releasers: Releasers): Promise<OpenDatabase> {
  let url = config.database.url;
  let embedded = false;
  if (url === undefined) {
    const pgEmbedded = await startEmbeddedPostgres({
      dir: config.database.embedded.dir,
      port: config.database.embedded.port,
      logger,
    });
    releasers.add('embedded-postgres', () => pgEmbedded.stop());
    url = pgEmbedded.url;
    embedded = true;
  }
  const db = await createDb({
    url,
    poolMax: config.database.poolMax,
    statementTimeoutMs: config.database.statementTimeoutMs,
  });
  releasers.add('db-pool', () => db.end());
  return { url, db, embedded };
}
