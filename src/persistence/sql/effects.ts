/** Queries of the effects family: the idempotency ledger of external actions. */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

/** The replica that may run an entry's effects: its owner, at its epoch, with a live lease. */
export interface EffectFence {
  ownerId: string;
  epoch: number;
}

/** The rows of `patch_test_queue` where the fence holds for the entry. */
const heldBy = (queueId: number, f: EffectFence) =>
  sql.fragment`id = ${queueId} AND owner_id = ${f.ownerId} AND owner_epoch = ${f.epoch} AND lease_until > now()`;
const fenceHolds = (queueId: number, f: EffectFence) =>
  sql.fragment`EXISTS (SELECT 1 FROM patch_test_queue WHERE ${heldBy(queueId, f)})`;
/** How long an entry's lease still runs, in ms by the database clock (a `patch_test_queue` row). */
const LEASE_LEFT_MS = sql.fragment`(extract(epoch FROM lease_until - now()) * 1000)::float8`;

/**
 * Claim an effect key in one statement: a new key is recorded `started` (fresh: run it); an
 * existing one comes back with its recorded status and result (succeeded/failed: return it;
 * started: reconcile, then run again — the execution count goes up). Fenced: only the entry's
 * owner at its current epoch with a live lease can claim; otherwise no row (null) — a replica that
 * lost its lease stops before its next effect. `lease_left_ms`: how long that lease still runs.
 */
export function claimEffect(db: Db, e: { key: string; queueId: number; step: string; fence: EffectFence }) {
  return db.maybeOne(sql.type(
    z.object({
      fresh: z.boolean(),
      status: z.enum(['started', 'succeeded', 'failed']),
      result: z.unknown().nullable(),
      lease_left_ms: z.number(),
    }),
  )`
    INSERT INTO effects (key, queue_id, step, status, executions, owner_id, owner_epoch)
    SELECT ${e.key}, ${e.queueId}, ${e.step}, 'started', 1, ${e.fence.ownerId}, ${e.fence.epoch}
    WHERE ${fenceHolds(e.queueId, e.fence)}
    ON CONFLICT (key) DO UPDATE SET executions = effects.executions + (CASE WHEN effects.status = 'started' THEN 1 ELSE 0 END),
      owner_id = excluded.owner_id, owner_epoch = excluded.owner_epoch
    RETURNING (xmax = 0) AS fresh, status, result,
      (SELECT ${LEASE_LEFT_MS} FROM patch_test_queue WHERE id = ${e.queueId}) AS lease_left_ms`);
}

/**
 * How long the entry's lease still runs under this fence, in ms by the database clock; null when
 * the fence no longer holds. The effect runner reads it right before an external call: a replica
 * that was frozen after its claim must not act on a lease that another replica may have taken.
 * @example await fenceLeaseLeft(db, 7, { ownerId: 'a', epoch: 3 }) // 2140, or null
 */
export function fenceLeaseLeft(db: Db, queueId: number, f: EffectFence) {
  return db.maybeOneFirst(sql.type(z.object({ left: z.number() }))`
    SELECT ${LEASE_LEFT_MS} AS left FROM patch_test_queue WHERE ${heldBy(queueId, f)}`);
}

/** Record the result; fenced like the claim. @returns false when the fence did not hold (nothing written). */
export async function markEffectSucceeded(
  db: Db,
  key: string,
  result: unknown,
  reconciled: boolean,
  fence: EffectFence,
  queueId: number,
) {
  const r = await db.query(sql.unsafe`
    UPDATE effects SET status = 'succeeded', result = ${sql.jsonb(result as never)}, completed_at = now(),
           external_ref = CASE WHEN ${reconciled} THEN '{"reconciled": true}'::jsonb ELSE external_ref END
    WHERE key = ${key} AND ${fenceHolds(queueId, fence)}`);
  return r.rowCount > 0;
}

/** A permanent failure is recorded as the effect's outcome; a transient one leaves it `started` (reconcile first next time). */
export async function markEffectFailed(
  db: Db,
  key: string,
  failure: { message: string; transient: boolean; at: number },
  fence: EffectFence,
  queueId: number,
) {
  const r = failure.transient
    ? await db.query(
        sql.unsafe`UPDATE effects SET error = ${failure.message} WHERE key = ${key} AND ${fenceHolds(queueId, fence)}`,
      )
    : await db.query(sql.unsafe`
        UPDATE effects SET status = 'failed', error = ${failure.message}, result = ${sql.jsonb(failure as never)}, completed_at = now()
        WHERE key = ${key} AND ${fenceHolds(queueId, fence)}`);
  return r.rowCount > 0;
}

const refRow = z.object({ ref: z.unknown() });

/**
 * The external references of every effect that scheduled UYUNI actions on a system (its
 * `external_ref` names the system): what reconciliation must not mistake for a lost action.
 * @example const refs = await listEffectRefsForSystem(db, 1001); // [{ systemIds: [1001], actionIds: [5] }]
 */
export function listEffectRefsForSystem(db: Db, systemId: number) {
  return db.anyFirst(sql.type(refRow)`
    SELECT external_ref AS ref FROM effects WHERE external_ref @> ${sql.jsonb({ systemIds: [systemId] })}`);
}

/**
 * Record the UYUNI actions an effect scheduled, merged into its external reference; done right
 * after scheduling (before the effect's result) so a crash in between does not lose them.
 * @example await addEffectActions(db, '7:1:apply', [1001], [55]);
 */
export function addEffectActions(db: Db, key: string, systemIds: number[], actionIds: number[]) {
  return db.query(sql.unsafe`
    UPDATE effects SET external_ref = coalesce(external_ref, '{}'::jsonb) || ${sql.jsonb({ systemIds, actionIds })}
    WHERE key = ${key}`);
}

/** @example const ref = await getEffectRef(db, '7:1:apply'); // { systemIds, actionIds } | null */
export function getEffectRef(db: Db, key: string) {
  return db.maybeOneFirst(sql.type(refRow)`SELECT external_ref AS ref FROM effects WHERE key = ${key}`);
}

/**
 * How many effects of an entry have a key matching a `LIKE` pattern (built by
 * `effectKeyLikePattern`, which escapes with a backslash).
 * @example await countEffectsMatching(db, 7, effectKeyLikePattern(7, 1, false, 'apply')) // 0: never applied
 */
export function countEffectsMatching(db: Db, queueId: number, likePattern: string) {
  return db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM effects WHERE queue_id = ${queueId} AND key LIKE ${likePattern} ESCAPE '\\'`);
}

/**
 * The UYUNI action ids recorded by an entry's effects whose key matches a `LIKE` pattern (built by
 * `effectKeyLikePattern`): every apply of an attempt, whatever its round.
 * @example await listEffectActionIds(db, 7, effectKeyLikePattern(7, 1, false, 'apply')) // [55]
 */
export function listEffectActionIds(db: Db, queueId: number, likePattern: string) {
  return db.anyFirst(sql.type(z.object({ id: z.number() }))`
    SELECT DISTINCT a::bigint::float8 AS id
    FROM effects e, jsonb_array_elements_text(coalesce(e.external_ref->'actionIds', '[]'::jsonb)) a
    WHERE e.queue_id = ${queueId} AND e.key LIKE ${likePattern} ESCAPE '\\' ORDER BY 1`);
}
