/**
 * The record of a test's phases (`patch_test_phases`: start, end, outcome, evidence), keyed by the
 * effect key so that a step re-run after a crash updates its row instead of adding one. The waits
 * between steps (stabilise after the patch, settle after the reboot) are recorded when the step
 * after them starts.
 */
import type { Db } from '../persistence/db.ts';
import { failPhase, finishPhase, insertWaitPhase, startPhase } from '../persistence/sql/phases.ts';
import { getTestId, insertTestRow } from '../persistence/sql/testResults.ts';
import { isTransient } from '../transient.ts';

export type PhaseName =
  | 'snapshot'
  | 'baseline'
  | 'apply'
  | 'await_action'
  | 'stabilize'
  | 'check_reboot'
  | 'reboot'
  | 'await_host'
  | 'settle'
  | 'validate'
  | 'rollback';

/**
 * The test row of an attempt (created here if the projection has not written it yet).
 * @example const testId = await testIdOf(db, 7, 1, 'USN-7001-1');
 */
export async function testIdOf(db: Db, queueId: number, attempt: number, errataId: string): Promise<number> {
  // Two statements: when the projection inserts the same row concurrently, the INSERT waits for it
  // and does nothing, and only a new statement's snapshot sees the committed row.
  const inserted = await insertTestRow(db, queueId, attempt, errataId);
  if (inserted !== null) return inserted;
  return getTestId(db, queueId, attempt);
}

export interface PhaseTarget {
  key: string;
  entryId: number;
  attempt: number;
  errataId: string;
}

/**
 * Record a wait between the previous phase's end and now (stabilize / settle), once.
 * @example await recordWait(db, target, 'settle', 'await_host');
 */
export async function recordWait(
  db: Db,
  t: PhaseTarget,
  phase: 'stabilize' | 'settle',
  after: PhaseName,
): Promise<void> {
  const testId = await testIdOf(db, t.entryId, t.attempt, t.errataId);
  await insertWaitPhase(db, { testId, queueId: t.entryId, phase, key: t.key }, after);
}

/**
 * Run one phase and record it.
 * @example
 * const out = await inPhase(db, input, 'snapshot', async () => ({ out: { snapshotId }, evidence: { snapshotId } }));
 */
export async function inPhase<T>(
  db: Db,
  t: PhaseTarget,
  phase: PhaseName,
  fn: () => Promise<{ out: T; evidence?: unknown; outcome?: 'ok' | 'failed' | 'skipped' }>,
): Promise<T> {
  const testId = await testIdOf(db, t.entryId, t.attempt, t.errataId);
  await startPhase(db, { testId, queueId: t.entryId, phase, key: t.key });
  try {
    const r = await fn();
    await finishPhase(db, t.key, phase, r.outcome ?? 'ok', r.evidence ?? r.out ?? null);
    return r.out;
  } catch (raw) {
    const message = (raw as { message?: string }).message;
    await failPhase(db, t.key, phase, isTransient(raw) ? 'retry' : 'failed', String(message ?? raw)).catch(
      () => undefined,
    );
    throw raw;
  }
}
