/**
 * `patch_test_phases`: one row per phase of a test (start, end, outcome, evidence), keyed by the
 * effect key so that a step re-run after a crash updates its row instead of adding one. The waits
 * between steps (stabilise after the patch, settle after the reboot) are recorded when the step
 * after them starts.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../persistence/db.ts';

export type PhaseName = 'snapshot' | 'baseline' | 'apply' | 'await_action' | 'stabilize' | 'check_reboot' | 'reboot' | 'await_host' | 'settle' | 'validate' | 'rollback';

/** The test row of an attempt (created here if the projection has not written it yet). */
export async function testIdOf(db: Db, queueId: number, attempt: number, errataId: string): Promise<number> {
  // Two statements: when the projection inserts the same row concurrently, the INSERT waits for it
  // and does nothing, and only a new statement's snapshot sees the committed row.
  const inserted = await db.maybeOneFirst(sql.type(z.object({ id: z.number() }))`
    INSERT INTO patch_tests (queue_id, errata_id, attempt, result) VALUES (${queueId}, ${errataId}, ${attempt}, 'running')
    ON CONFLICT (queue_id, attempt) DO NOTHING RETURNING id`);
  if (inserted !== null) return inserted;
  return db.oneFirst(sql.type(z.object({ id: z.number() }))`SELECT id FROM patch_tests WHERE queue_id = ${queueId} AND attempt = ${attempt}`);
}

export interface PhaseTarget {
  key: string;
  entryId: number;
  attempt: number;
  errataId: string;
}

/** Record a wait between the previous phase's end and now (stabilize / settle), once. */
export async function recordWait(db: Db, t: PhaseTarget, phase: 'stabilize' | 'settle', after: PhaseName): Promise<void> {
  const testId = await testIdOf(db, t.entryId, t.attempt, t.errataId);
  await db.query(sql.unsafe`
    INSERT INTO patch_test_phases (test_id, queue_id, phase, started_at, ended_at, outcome, effect_key, evidence)
    SELECT ${testId}, ${t.entryId}, ${phase}, p.ended_at, now(), 'ok', ${t.key}, jsonb_build_object('waited_seconds', round(extract(epoch FROM now() - p.ended_at)::numeric, 1))
    FROM patch_test_phases p WHERE p.test_id = ${testId} AND p.phase = ${after} AND p.ended_at IS NOT NULL
    ORDER BY p.ended_at DESC LIMIT 1
    ON CONFLICT (effect_key, phase) WHERE effect_key IS NOT NULL DO NOTHING`);
}

/**
 * Run one phase and record it.
 * @example
 * const out = await inPhase(db, input, 'snapshot', async () => ({ out: { snapshotId }, evidence: { snapshotId } }));
 */
export async function inPhase<T>(db: Db, t: PhaseTarget, phase: PhaseName, fn: () => Promise<{ out: T; evidence?: unknown; outcome?: 'ok' | 'failed' | 'skipped' }>): Promise<T> {
  const testId = await testIdOf(db, t.entryId, t.attempt, t.errataId);
  await db.query(sql.unsafe`
    INSERT INTO patch_test_phases (test_id, queue_id, phase, outcome, effect_key) VALUES (${testId}, ${t.entryId}, ${phase}, 'running', ${t.key})
    ON CONFLICT (effect_key, phase) WHERE effect_key IS NOT NULL DO UPDATE SET outcome = 'running', error = NULL, ended_at = NULL`);
  try {
    const r = await fn();
    await db.query(sql.unsafe`
      UPDATE patch_test_phases SET ended_at = now(), outcome = ${r.outcome ?? 'ok'}, evidence = ${sql.jsonb((r.evidence ?? r.out ?? null) as never)}
      WHERE effect_key = ${t.key} AND phase = ${phase}`);
    return r.out;
  } catch (raw) {
    const err = raw as { message?: string; transient?: boolean };
    await db.query(sql.unsafe`
      UPDATE patch_test_phases SET ended_at = now(), outcome = ${err.transient === true ? 'retry' : 'failed'}, error = ${String(err.message ?? raw)}
      WHERE effect_key = ${t.key} AND phase = ${phase}`).catch(() => undefined);
    throw raw;
  }
}
