/**
 * Queries of the snapshot cleanup (the design's "snapshot storage full" risk): which snapshots the
 * orchestrator took are due for deletion, and the record that one was deleted. The record is an
 * `effects` row (the ledger of external actions) keyed `<entry>:<attempt>:snapshot_cleanup`, so a
 * deletion is done once across crashes and replicas.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const dueRow = z.object({
  queue_id: z.number(),
  attempt: z.number(),
  system: z.string(),
  snapshot_id: z.string(),
  key: z.string(),
});

/**
 * Test-system snapshots of entries that ended (final) more than `keepDays` ago, not yet cleaned.
 * @example await listSnapshotsDueForCleanup(db, 7, 50)
 */
export function listSnapshotsDueForCleanup(db: Db, keepDays: number, limit: number) {
  return db.any(sql.type(dueRow)`
    SELECT t.queue_id, t.attempt, t.test_system_name AS system, t.snapshot_id,
           t.queue_id || ':' || t.attempt || ':snapshot_cleanup' AS key
    FROM patch_tests t JOIN patch_test_queue q ON q.id = t.queue_id
    WHERE t.snapshot_id IS NOT NULL AND t.test_system_name IS NOT NULL AND t.snapshot_id ~ '^[0-9]+$'
      AND q.status IN ('completed', 'rejected', 'rolled_back', 'removed')
      AND q.completed_at < now() - make_interval(days => ${keepDays})
      AND NOT EXISTS (SELECT 1 FROM effects e WHERE e.key = t.queue_id || ':' || t.attempt || ':snapshot_cleanup')
    ORDER BY q.completed_at LIMIT ${limit}`);
}

/** Record a cleaned (or already gone) snapshot; the result says which. */
export function recordSnapshotCleanup(db: Db, c: { key: string; queueId: number; result: unknown }) {
  return db.query(sql.unsafe`
    INSERT INTO effects (key, queue_id, step, status, executions, result, completed_at)
    VALUES (${c.key}, ${c.queueId}, 'snapshot_cleanup', 'succeeded', 1, ${sql.jsonb(c.result as never)}, now())
    ON CONFLICT (key) DO NOTHING`);
}
