/** Queries of the effects family: the idempotency ledger of external actions. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export const effectRow = z.object({
  key: z.string(),
  status: z.enum(['started', 'succeeded', 'failed']),
  executions: z.number(),
  result: z.unknown().nullable(),
  error: z.string().nullable(),
});

export function getEffect(db: Db, key: string) {
  return db.maybeOne(sql.type(effectRow)`SELECT key, status, executions, result, error FROM effects WHERE key = ${key}`);
}

/** Record that the effect is about to run (again); returns the execution count. */
export function markEffectStarted(db: Db, e: { key: string; queueId: number; step: string }) {
  return db.oneFirst(sql.type(z.object({ executions: z.number() }))`
    INSERT INTO effects (key, queue_id, step, status, executions) VALUES (${e.key}, ${e.queueId}, ${e.step}, 'started', 1)
    ON CONFLICT (key) DO UPDATE SET status = 'started', executions = effects.executions + 1, error = NULL
    RETURNING executions`);
}

export function markEffectSucceeded(db: Db, key: string, result: unknown, reconciled: boolean) {
  return db.query(sql.unsafe`
    UPDATE effects SET status = 'succeeded', result = ${sql.jsonb(result as never)}, completed_at = now(),
           external_ref = CASE WHEN ${reconciled} THEN '{"reconciled": true}'::jsonb ELSE external_ref END
    WHERE key = ${key}`);
}

/** A permanent failure is recorded as the effect's outcome; a transient one leaves it `started` (reconcile first next time). */
export function markEffectFailed(db: Db, key: string, failure: { message: string; transient: boolean; at: number }) {
  return failure.transient
    ? db.query(sql.unsafe`UPDATE effects SET error = ${failure.message} WHERE key = ${key}`)
    : db.query(sql.unsafe`UPDATE effects SET status = 'failed', error = ${failure.message}, result = ${sql.jsonb(failure as never)}, completed_at = now() WHERE key = ${key}`);
}
