/**
 * Queries of the patch_test_phases family: one row per phase of a test, keyed by the effect key so
 * that a step re-run after a crash updates its row instead of adding one.
 */
import { sql } from 'slonik';
import type { Db } from '../db.ts';

export interface PhaseRowKey {
  testId: number;
  queueId: number;
  phase: string;
  /** The effect key of the step that runs (or follows) the phase. */
  key: string;
}

/**
 * Record a wait (stabilise, settle) from the end of the phase before it until now, once: it is
 * written when the step after the wait starts, and a re-run of that step adds nothing.
 * @example await insertWaitPhase(db, { testId, queueId: 7, phase: 'settle', key }, 'await_host');
 */
export function insertWaitPhase(db: Db, p: PhaseRowKey, after: string) {
  return db.query(sql.unsafe`
    INSERT INTO patch_test_phases (test_id, queue_id, phase, started_at, ended_at, outcome, effect_key, evidence)
    SELECT ${p.testId}, ${p.queueId}, ${p.phase}, p.ended_at, now(), 'ok', ${p.key},
           jsonb_build_object('waited_seconds', round(extract(epoch FROM now() - p.ended_at)::numeric, 1))
    FROM patch_test_phases p WHERE p.test_id = ${p.testId} AND p.phase = ${after} AND p.ended_at IS NOT NULL
    ORDER BY p.ended_at DESC LIMIT 1
    ON CONFLICT (effect_key, phase) WHERE effect_key IS NOT NULL DO NOTHING`);
}

/**
 * Mark a phase running (a re-run after a crash or a retry clears its previous end and error).
 * @example await startPhase(db, { testId, queueId: 7, phase: 'apply', key: '7:1:apply' });
 */
export function startPhase(db: Db, p: PhaseRowKey) {
  return db.query(sql.unsafe`
    INSERT INTO patch_test_phases (test_id, queue_id, phase, outcome, effect_key)
    VALUES (${p.testId}, ${p.queueId}, ${p.phase}, 'running', ${p.key})
    ON CONFLICT (effect_key, phase) WHERE effect_key IS NOT NULL
    DO UPDATE SET outcome = 'running', error = NULL, ended_at = NULL`);
}

/** @example await finishPhase(db, '7:1:apply', 'apply', 'ok', { actionIds: [12] }); */
export function finishPhase(
  db: Db,
  key: string,
  phase: string,
  outcome: 'ok' | 'failed' | 'skipped',
  evidence: unknown,
) {
  return db.query(sql.unsafe`
    UPDATE patch_test_phases SET ended_at = now(), outcome = ${outcome}, evidence = ${sql.jsonb(evidence as never)}
    WHERE effect_key = ${key} AND phase = ${phase}`);
}

/**
 * `retry`: a transient error, the machine runs the step again.
 * @example await failPhase(db, key, 'apply', 'retry', msg);
 */
export function failPhase(db: Db, key: string, phase: string, outcome: 'retry' | 'failed', error: string) {
  return db.query(sql.unsafe`
    UPDATE patch_test_phases SET ended_at = now(), outcome = ${outcome}, error = ${error}
    WHERE effect_key = ${key} AND phase = ${phase}`);
}
