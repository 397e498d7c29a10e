/** The answers about one test run: `GET /tests/{id}` and `GET /tests/{id}/phases`. */
import { stateLabel } from '../../machines/patch.machine.ts';
import type { Db } from '../../persistence/db.ts';
import { getQueueItem, getTest, getTestPhases } from '../../persistence/sql/queue.ts';

/**
 * A test row (every column) with its entry's status and state, or null.
 * @example
 * const detail = await testDetail(db, 4);
 */
export async function testDetail(db: Db, testId: number) {
  const test = await getTest(db, testId);
  if (!test) return null;
  const entry = await getQueueItem(db, test.queue_id as number);
  return {
    test,
    entry_status: entry?.status ?? null,
    state: entry ? stateLabel((entry.state_value ?? entry.status) as never) : null,
  };
}

/**
 * A test's phases in the order they started, or null when there is no such test.
 * @example
 * const phases = await testPhases(db, 4);
 */
export async function testPhases(db: Db, testId: number) {
  if (!(await getTest(db, testId))) return null;
  return getTestPhases(db, testId);
}
