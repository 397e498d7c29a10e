/** Queries of the effects family: the idempotency ledger of external actions. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/**
 * Claim an effect key in one statement: a new key is recorded `started` (fresh: run it); an
 * existing one comes back with its recorded status and result (succeeded/failed: return it;
 * started: reconcile, then run again — the execution count goes up).
 */
export function claimEffect(db: Db, e: { key: string; queueId: number; step: string }) {
  return db.one(sql.type(z.object({ fresh: z.boolean(), status: z.enum(['started', 'succeeded', 'failed']), result: z.unknown().nullable() }))`
    INSERT INTO effects (key, queue_id, step, status, executions) VALUES (${e.key}, ${e.queueId}, ${e.step}, 'started', 1)
    ON CONFLICT (key) DO UPDATE SET executions = effects.executions + (CASE WHEN effects.status = 'started' THEN 1 ELSE 0 END)
    RETURNING (xmax = 0) AS fresh, status, result`);
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
