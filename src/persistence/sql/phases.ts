/**
 * Queries of the patch_test_phases family: one row per phase of a test, keyed by the effect key so
 * that a step re-run after a crash updates its row instead of adding one.
 */
import { sql } from 'slonik';
import { z } from 'zod';
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

/**
 * What a running phase is doing, while it runs (the baseline waiting for samples, validation
 * collecting its post window): merged into its evidence, so what an earlier run recorded (the
 * post window's start) stays.
 * @example await notePhaseProgress(db, key, 'baseline', { waiting_for_samples: '3/10' });
 */
export function notePhaseProgress(db: Db, key: string, phase: string, evidence: Record<string, unknown>) {
  return db.query(sql.unsafe`
    UPDATE patch_test_phases SET evidence = coalesce(evidence, '{}'::jsonb) || ${sql.jsonb(evidence as never)}
    WHERE effect_key = ${key} AND phase = ${phase}`);
}

/**
 * A phase row's evidence by effect key (null: no row or no evidence).
 * @example const ev = await phaseEvidence(db, key, 'validate');
 */
export function phaseEvidence(db: Db, key: string, phase: string) {
  return db.maybeOneFirst(sql.type(z.object({ evidence: z.unknown() }))`
    SELECT evidence FROM patch_test_phases WHERE effect_key = ${key} AND phase = ${phase}`);
}

/**
 * The latest finished row of a phase of a test: its outcome and evidence (null: it never ran).
 * @example const check = await lastPhaseOfTest(db, testId, 'check_reboot'); // { outcome: 'ok', evidence: { required: true } }
 */
export function lastPhaseOfTest(db: Db, testId: number, phase: string) {
  return db.maybeOne(sql.type(z.object({ outcome: z.string().nullable(), evidence: z.unknown() }))`
    SELECT outcome, evidence FROM patch_test_phases WHERE test_id = ${testId} AND phase = ${phase} AND ended_at IS NOT NULL
    ORDER BY ended_at DESC LIMIT 1`);
}

/**
 * When the last rollback of another test on this test system ended (null: none): the system's state
 * changed then, so a baseline reaches back no further.
 * @example const since = await lastRollbackOnSystem(db, 'web01', testId); // Date | null
 */
export async function lastRollbackOnSystem(db: Db, systemName: string, testId: number): Promise<Date | null> {
  const at = await db.oneFirst(sql.type(z.object({ at: z.string().nullable() }))`
    SELECT max(p.ended_at)::text AS at FROM patch_test_phases p JOIN patch_tests t ON t.id = p.test_id
    WHERE t.test_system_name = ${systemName} AND p.test_id <> ${testId} AND p.phase = 'rollback'
      AND p.ended_at IS NOT NULL AND p.outcome IN ('ok', 'failed')`);
  return at === null ? null : new Date(at);
}
