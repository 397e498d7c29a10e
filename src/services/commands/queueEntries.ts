/** `PATCH /queue/{id}`: the fields an operator may set on an entry outside its machine. */
import type { Db } from '../../persistence/db.ts';
import { getQueueItem, updateQueueFields } from '../../persistence/sql/queue.ts';

/**
 * Set the priority override and/or the notes (null clears them); neither is machine state, so
 * no event is sent. Answers the updated entry, or null when there is no such entry.
 * @example
 * const entry = await editQueueEntry(db, 12, { notes: 'wait for the kernel fix' });
 */
export async function editQueueEntry(
  db: Db,
  id: number,
  fields: { priority_override?: number | null; notes?: string | null },
) {
  const row = await updateQueueFields(db, id, fields);
  if (!row) return null;
  return getQueueItem(db, id);
}
