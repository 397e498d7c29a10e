/**
 * The golden corpus (issue 10, the catalogue's T10): persisted entries as a released machine wrote
 * them — one entry in every state and sub-state the model reaches, timers armed, with their journal,
 * effects ledger, tests and approvals. An upgrade must restore every one of them and finish it.
 *
 * Rows are kept as `to_jsonb(row)` and put back with `jsonb_populate_record`, so the file is the
 * database's own view of the row, column for column.
 */
import { readFileSync } from 'node:fs';
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../../src/persistence/db.ts';

/** Tables that hold an entry's durable state, in foreign-key order. */
export const ENTRY_TABLES = [
  'patch_test_queue',
  'patch_tests',
  'patch_approvals',
  'patch_transitions',
  'timers',
  'effects',
] as const;
export type EntryTable = (typeof ENTRY_TABLES)[number];

export interface GoldenEntry {
  /** The machine state, e.g. `prod_pending.waiting_window`. */
  label: string;
  /** The model's state key (value + the context bits guards read). */
  modelKey: string;
  rows: Record<EntryTable, Record<string, unknown>[]>;
}
export interface GoldenCorpus {
  machineVersion: string;
  capturedFrom: string;
  entries: GoldenEntry[];
}

const rowsOf = z.array(z.record(z.string(), z.unknown()));

export async function captureEntryRows(db: Db, id: number): Promise<GoldenEntry['rows']> {
  const out = {} as GoldenEntry['rows'];
  for (const table of ENTRY_TABLES) {
    const column = table === 'patch_test_queue' ? 'id' : 'queue_id';
    // Table and column names come from the constant list above, never from input.
    const rows = await db.anyFirst(
      sql.type(z.object({ row: z.record(z.string(), z.unknown()) }))`
        SELECT to_jsonb(t) AS row FROM ${sql.identifier([table])} t WHERE ${sql.identifier([column])} = ${id}
        ORDER BY 1`,
    );
    out[table] = rowsOf.parse(rows);
  }
  return out;
}

/** Put a corpus entry's rows back, as an upgraded daemon would find them (no live owner). */
export async function restoreEntryRows(db: Db, rows: GoldenEntry['rows']): Promise<void> {
  await db.transaction(async (tx) => {
    for (const table of ENTRY_TABLES) {
      for (const raw of rows[table]) {
        // patch_test_queue.test_id and patch_tests.queue_id point at each other: the queue row goes
        // in first without its test, and gets it once the tests are in.
        const row = table === 'patch_test_queue' ? { ...raw, owner_id: null, lease_until: null, test_id: null } : raw;
        // Only the columns the corpus has: a column added since it was captured takes its default
        // (e.g. patch_transitions.hash_version = 1), as in a database upgraded in place.
        const columns = sql.join(
          Object.keys(row).map((c) => sql.identifier([c])),
          sql.fragment`, `,
        );
        await tx.query(sql.unsafe`
          INSERT INTO ${sql.identifier([table])} (${columns})
          SELECT ${columns} FROM jsonb_populate_record(NULL::${sql.identifier([table])}, ${sql.jsonb(row as never)})`);
      }
    }
    const queue = rows.patch_test_queue[0];
    if (queue?.test_id != null) {
      await tx.query(
        sql.unsafe`UPDATE patch_test_queue SET test_id = ${Number(queue.test_id)} WHERE id = ${Number(queue.id)}`,
      );
    }
  });
}

/** After restoring rows with their ids, move the id sequences past them. */
export async function resetSequences(db: Db): Promise<void> {
  for (const [table, seq] of [
    ['patch_test_queue', 'patch_test_queue_id_seq'],
    ['patch_tests', 'patch_tests_id_seq'],
    ['patch_approvals', 'patch_approvals_id_seq'],
  ] as const) {
    await db.query(
      sql.unsafe`SELECT setval(${seq}, greatest(1, (SELECT coalesce(max(id), 0) FROM ${sql.identifier([table])})))`,
    );
  }
}

export function loadCorpus(path: URL): GoldenCorpus {
  return JSON.parse(readFileSync(path, 'utf8')) as GoldenCorpus;
}
