/** `PATCH /queue/{id}`: the fields an operator may set on an entry outside its machine. */
import type { Db } from '../../persistence/db.ts';
import { changeAudit, insertAudit, type AuditSlot } from '../../persistence/sql/audit.ts';
import { getQueueItem, updateQueueFields } from '../../persistence/sql/queue.ts';

/**
 * Set the priority override and/or the notes (null clears them); neither is machine state, so
 * no event is sent. The request's audit row is written in the same transaction. Answers the
 * updated entry, or null when there is no such entry.
 * @example
 * const entry = await editQueueEntry(db, 12, { notes: 'wait for the kernel fix' }, meta.audit);
 */
export async function editQueueEntry(
  db: Db,
  id: number,
  fields: { priority_override?: number | null; notes?: string | null },
  audit?: AuditSlot,
) {
  const row = await db.transaction(async (tx) => {
    const r = await updateQueueFields(tx, id, fields);
    if (r && audit) {
      await insertAudit(
        tx,
        changeAudit(audit, { type: 'queue_entry', id: String(id) }, { fields: Object.keys(fields) }),
      );
    }
    return r;
  });
  if (row && audit) audit.written++;
  if (!row) return null;
  return getQueueItem(db, id);
}
