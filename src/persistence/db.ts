/**
 * The database handle every module receives: a slonik pool over pg, with type parsers that keep
 * rows JSON-safe (timestamps as epoch ms, int8 as number).
 */
import pg from 'pg';
import { createPool, createTypeParserPreset, type DatabasePool } from 'slonik';

export type Db = DatabasePool;

/**
 * Create the slonik pool. The pool connects lazily; call `pingDatabase` to check reachability.
 * @example
 * const db = await createDb({ url, poolMax: 10 });
 */
export async function createDb(opts: { url: string; poolMax: number; statementTimeoutMs?: number }): Promise<Db> {
  const statementTimeout = opts.statementTimeoutMs ?? 25_000;
  // A connection that goes silent (a blackholed network, a failed-over primary) would hang a
  // query for ever: the server's statement_timeout cannot fire for a server that never got the
  // query. pg's client-side timeout (process-wide: slonik does not pass it per pool) ends it a
  // little after the server's own, as a transient error. Migrations set their own, longer one.
  pg.defaults.query_timeout = statementTimeout + 5_000;
  const typeParsers = createTypeParserPreset().filter((p) => p.name !== 'int8' && p.name !== 'numeric');
  typeParsers.push(
    { name: 'int8', parse: (v: string) => Number(v) },
    { name: 'numeric', parse: (v: string) => Number(v) },
  );
  return createPool(opts.url, {
    maxPoolSize: opts.poolMax,
    typeParsers,
    captureStackTrace: false,
    connectionTimeout: 5000,
    statementTimeout,
    idleTimeout: 10_000,
    connectionRetryLimit: 1,
  });
}
