/** The audit_log family: every mutating API request and every security event. */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export interface AuditRecord {
  actor: string;
  tokenId: number | null;
  action: string;
  method: string;
  path: string;
  targetType?: string | null;
  targetId?: string | null;
  outcome: 'allowed' | 'denied' | 'failed' | 'succeeded';
  statusCode: number;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  details?: unknown;
}

/**
 * Append one row; the database chains it (seq, prev_hash, hash: migration 0005). Pass the
 * transaction of the change it records to write both or neither.
 */
export function insertAudit(db: Db | DatabaseTransactionConnection, a: AuditRecord) {
  return db.query(sql.unsafe`
    INSERT INTO audit_log (actor, token_id, action, method, path, target_type, target_id, outcome, status_code, ip_address, user_agent, request_id, details)
    VALUES (${a.actor}, ${a.tokenId}, ${a.action}, ${a.method}, ${a.path}, ${a.targetType ?? null}, ${a.targetId ?? null}, ${a.outcome}, ${a.statusCode},
            ${a.ip}, ${a.userAgent?.slice(0, 500) ?? null}, ${a.requestId}, ${a.details === undefined ? null : sql.jsonb(a.details as never)})`);
}

/**
 * A request's audit record while it runs (set by `authenticate`, carried in the event metadata):
 * the first transaction that changes something for the request writes it, with its target, in
 * that transaction (the actor host's journal write, the entry's creation, a rollback job);
 * `authenticate` writes it after the answer only when nothing did (`written === 0`).
 */
export interface AuditSlot {
  record: Omit<AuditRecord, 'outcome' | 'statusCode' | 'targetType' | 'targetId' | 'details'>;
  /** The status the route answers a success with (200, 201, 202). */
  successStatus: number;
  /** Rows written for this request so far. */
  written: number;
  /** What the request acts on (from its route's `:id`), for a row written after the answer. */
  target?: { type: string; id: string };
}

/**
 * The row of a change made for the request, to insert in the change's transaction.
 * @example await insertAudit(tx, changeAudit(slot, { type: 'queue_entry', id: '12' }, { event: 'APPROVE' }));
 */
export function changeAudit(
  slot: AuditSlot,
  target: { type: string; id: string },
  details: Record<string, unknown>,
): AuditRecord {
  return {
    ...slot.record,
    outcome: 'succeeded',
    statusCode: slot.successStatus,
    targetType: target.type,
    targetId: target.id,
    details,
  };
}

export const auditRow = z.object({
  seq: z.number(),
  id: z.number(),
  at: z.number(),
  actor: z.string(),
  token_id: z.number().nullable(),
  action: z.string(),
  method: z.string().nullable(),
  path: z.string().nullable(),
  target_type: z.string().nullable(),
  target_id: z.string().nullable(),
  outcome: z.string(),
  status_code: z.number().nullable(),
  ip_address: z.string().nullable(),
  user_agent: z.string().nullable(),
  request_id: z.string().nullable(),
  details: z.unknown(),
  prev_hash: z.string(),
  hash: z.string(),
});
export type AuditRow = z.infer<typeof auditRow>;

/** What `GET /audit` filters on; every field optional, all given ones must hold. */
export interface AuditFilter {
  actor?: string | undefined;
  action?: string | undefined;
  outcome?: AuditRecord['outcome'] | undefined;
  targetType?: string | undefined;
  targetId?: string | undefined;
  /** Epoch ms, inclusive. */
  since?: number | undefined;
  /** Epoch ms, exclusive. */
  until?: number | undefined;
}

/**
 * One page of the audit log by `seq` (keyset: the rows after `cursor` in the given order).
 * @example const page = await listAudit(db, { actor: 'alice' }, { order: 'desc', cursor: null, limit: 100 });
 */
export function listAudit(
  db: Db,
  f: AuditFilter,
  page: { order: 'asc' | 'desc'; cursor: number | null; limit: number },
) {
  const where = [
    f.actor !== undefined ? sql.fragment`actor = ${f.actor}` : null,
    f.action !== undefined ? sql.fragment`action = ${f.action}` : null,
    f.outcome !== undefined ? sql.fragment`outcome = ${f.outcome}` : null,
    f.targetType !== undefined ? sql.fragment`target_type = ${f.targetType}` : null,
    f.targetId !== undefined ? sql.fragment`target_id = ${f.targetId}` : null,
    f.since !== undefined ? sql.fragment`at >= to_timestamp(${f.since / 1000})` : null,
    f.until !== undefined ? sql.fragment`at < to_timestamp(${f.until / 1000})` : null,
    page.cursor === null
      ? null
      : page.order === 'asc'
        ? sql.fragment`seq > ${page.cursor}`
        : sql.fragment`seq < ${page.cursor}`,
  ].filter((x) => x !== null);
  return db.any(sql.type(auditRow)`
    SELECT seq, id, at, actor, token_id, action, method, path, target_type, target_id, outcome, status_code,
           ip_address::text AS ip_address, user_agent, request_id, details, prev_hash, hash
    FROM audit_log
    ${where.length > 0 ? sql.fragment`WHERE ${sql.join(where, sql.fragment` AND `)}` : sql.fragment``}
    ORDER BY seq ${page.order === 'asc' ? sql.fragment`ASC` : sql.fragment`DESC`}
    LIMIT ${page.limit}`);
}
