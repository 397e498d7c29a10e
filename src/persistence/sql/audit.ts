/** The audit_log family: every mutating API request and every security event. */
import { sql, type DatabaseTransactionConnection } from 'slonik';
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
