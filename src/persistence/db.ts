/**
 * The database handle every module receives: a slonik pool over pg, with type parsers that keep
 * rows JSON-safe (timestamps as epoch ms, int8 as number).
 */
import { createPool, createTypeParserPreset, type DatabasePool } from 'slonik';

export type Db = DatabasePool;

/**
 * Create the slonik pool. The pool connects lazily; call `pingDatabase` to check reachability.
 * @example
 * const db = await createDb({ url, poolMax: 10 });
 */
export async function createDb(opts: { url: string; poolMax: number; statementTimeoutMs?: number }): Promise<Db> {
  const typeParsers = createTypeParserPreset().filter((p) => p.name !== 'int8' && p.name !== 'numeric');
  typeParsers.push({ name: 'int8', parse: (v: string) => Number(v) }, { name: 'numeric', parse: (v: string) => Number(v) });
  return createPool(opts.url, {
    maxPoolSize: opts.poolMax,
    typeParsers,
    captureStackTrace: false,
    connectionTimeout: 5000,
    statementTimeout: opts.statementTimeoutMs ?? 60_000,
    idleTimeout: 10_000,
    connectionRetryLimit: 1,
  });
}
