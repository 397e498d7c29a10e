/** The operator inbox (sql/0004_replicas.sql): operator events forwarded to the replica that owns the entry. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const inboxRow = z.object({
  id: z.number(),
  queue_id: z.number(),
  event: z.record(z.string(), z.unknown()),
  meta: z.record(z.string(), z.unknown()),
});
const answerRow = z.object({
  status: z.enum(['pending', 'taken', 'done', 'failed', 'withdrawn']),
  answer: z.unknown().nullable(),
});

/** Leave an event for the owner of its entry, and wake the owners. */
export async function postInboxEvent(
  db: Db,
  m: { queueId: number; event: unknown; meta: unknown; sentBy: string },
): Promise<number> {
  return db.transaction(async (tx) => {
    const id = await tx.oneFirst(sql.type(z.object({ id: z.number() }))`
      INSERT INTO operator_inbox (queue_id, event, meta, sent_by)
      VALUES (${m.queueId}, ${sql.jsonb(m.event as never)}, ${sql.jsonb(m.meta as never)}, ${m.sentBy})
      RETURNING id`);
    await tx.query(sql.unsafe`SELECT pg_notify('spm_inbox', ${String(m.queueId)})`);
    return id;
  });
}

/** The owner takes the pending events of the entries it owns, oldest first. */
export function takeInboxEvents(db: Db, ownerId: string, limit: number) {
  return db.any(sql.type(inboxRow)`
    UPDATE operator_inbox i SET status = 'taken', taken_by = ${ownerId}
    WHERE i.id IN (
      SELECT i2.id FROM operator_inbox i2 JOIN patch_test_queue q ON q.id = i2.queue_id
      WHERE i2.status = 'pending' AND q.owner_id = ${ownerId} AND q.lease_until > now()
      ORDER BY i2.id LIMIT ${limit} FOR UPDATE OF i2 SKIP LOCKED)
    RETURNING i.id, i.queue_id, i.event, i.meta`);
}

/** The owner's answer, written after its transition committed; wakes the sender. */
export async function answerInboxEvent(db: Db, id: number, ok: boolean, answer: unknown): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(sql.unsafe`
      UPDATE operator_inbox SET status = ${ok ? 'done' : 'failed'}, answer = ${sql.jsonb(answer as never)}, answered_at = now()
      WHERE id = ${id}`);
    await tx.query(sql.unsafe`SELECT pg_notify('spm_inbox_answer', ${String(id)})`);
  });
}

export function readInboxAnswer(db: Db, id: number) {
  return db.one(sql.type(answerRow)`SELECT status, answer FROM operator_inbox WHERE id = ${id}`);
}

/**
 * The sender gives up on an event nobody took (the owner is gone): withdrawn, it can never be
 * delivered later. @returns false when the owner took it first (its answer will come).
 */
export async function withdrawInboxEvent(db: Db, id: number): Promise<boolean> {
  const r = await db.query(
    sql.unsafe`UPDATE operator_inbox SET status = 'withdrawn', answered_at = now() WHERE id = ${id} AND status = 'pending'`,
  );
  return r.rowCount > 0;
}
