/**
 * The audit chain's canonical text and its anchors (migration 0005).
 *
 * `audit_log` rows are chained by a database trigger: `hash = sha256(prev_hash ‖ canonical)`,
 * `canonical = 'audit/1|' + fields joined by '|'`, each field `~` for NULL or
 * `<UTF-8 octets>:<text>` — the columns as PostgreSQL renders them as text (jsonb as
 * `details::text`, timestamps as whole epoch microseconds). The same text is rebuilt here from a
 * `SELECT …::text` of the row, with built-in casts only, so the check needs no database function
 * an attacker could replace and no JSON re-serialisation that could differ between PG and Node.
 *
 * An anchor (`audit_anchors`, chained the same way) records the audit head and a digest over every
 * entry's journal head; `audit_anchor_heads` holds the heads that changed since the previous
 * anchor. Deleting the newest rows below an anchor is then visible (src/persistence/auditVerify.ts).
 * Anchors are logged too: the log line is the copy outside the database.
 */
import { createHash } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { Logger } from '../logger.ts';
import type { Db } from './db.ts';
import { GENESIS_HASH } from './journal.ts';

/** The advisory lock (transaction scope) that serialises anchors; 7240117005 serialises audit inserts (in SQL). */
export const ANCHOR_LOCK_KEY = 7_240_117_006;

/** One field of a canonical text: `~` for NULL, else its UTF-8 length, `:`, the text. */
export function chainField(v: string | null): string {
  return v === null ? '~' : `${Buffer.byteLength(v, 'utf8')}:${v}`;
}

export function chainHashText(prevHash: string, canonical: string): string {
  return createHash('sha256').update(prevHash, 'utf8').update(canonical, 'utf8').digest('hex');
}

/** An audit row with every column as PostgreSQL renders it as text (`at_us`: epoch microseconds). */
export const auditRowText = z.object({
  id: z.string(),
  seq: z.string(),
  at_us: z.string(),
  actor: z.string().nullable(),
  token_id: z.string().nullable(),
  action: z.string().nullable(),
  method: z.string().nullable(),
  path: z.string().nullable(),
  target_type: z.string().nullable(),
  target_id: z.string().nullable(),
  outcome: z.string().nullable(),
  status_code: z.string().nullable(),
  ip_address: z.string().nullable(),
  user_agent: z.string().nullable(),
  request_id: z.string().nullable(),
  details: z.string().nullable(),
  prev_hash: z.string().nullable(),
  hash: z.string().nullable(),
});
export type AuditRowText = z.infer<typeof auditRowText>;

/** The select list that renders an audit row as {@link AuditRowText} (built-in casts only). */
export const AUDIT_ROW_TEXT = sql.fragment`
  id::text AS id, seq::text AS seq, ((extract(epoch FROM at) * 1000000)::bigint)::text AS at_us, actor, token_id::text AS token_id,
  action, method, path, target_type, target_id, outcome, status_code::text AS status_code, ip_address::text AS ip_address,
  user_agent, request_id, details::text AS details, prev_hash, hash`;

/** The canonical text of an audit row; must match `spm_audit_canonical` in sql/0005_audit_chain.sql. */
export function auditCanonical(r: AuditRowText): string {
  return `audit/1|${[
    r.id,
    r.seq,
    r.at_us,
    r.actor,
    r.token_id,
    r.action,
    r.method,
    r.path,
    r.target_type,
    r.target_id,
    r.outcome,
    r.status_code,
    r.ip_address,
    r.user_agent,
    r.request_id,
    r.details,
  ]
    .map(chainField)
    .join('|')}`;
}

export const anchorRowText = z.object({
  seq: z.string(),
  at_us: z.string(),
  recorded_by: z.string().nullable(),
  audit_seq: z.string(),
  audit_hash: z.string().nullable(),
  journal_entries: z.string(),
  journal_rows: z.string(),
  journal_digest: z.string().nullable(),
  heads_recorded: z.string(),
  prev_hash: z.string().nullable(),
  hash: z.string().nullable(),
});
export type AnchorRowText = z.infer<typeof anchorRowText>;

export const ANCHOR_ROW_TEXT = sql.fragment`
  seq::text AS seq, ((extract(epoch FROM at) * 1000000)::bigint)::text AS at_us, recorded_by, audit_seq::text AS audit_seq, audit_hash,
  journal_entries::text AS journal_entries, journal_rows::text AS journal_rows, journal_digest, heads_recorded::text AS heads_recorded,
  prev_hash, hash`;

/** The canonical text of an anchor; must match `spm_anchor_canonical` in sql/0005_audit_chain.sql. */
export function anchorCanonical(a: AnchorRowText): string {
  return `anchor/1|${[
    a.seq,
    a.at_us,
    a.recorded_by,
    a.audit_seq,
    a.audit_hash,
    a.journal_entries,
    a.journal_rows,
    a.journal_digest,
    a.heads_recorded,
  ]
    .map(chainField)
    .join('|')}`;
}

/** Digest over journal heads: sha256 of `queue_id:seq:hash` lines in queue_id order, joined by '\n'. */
export function journalHeadsDigest(heads: readonly { queueId: number; seq: number; hash: string }[]): string {
  const sorted = [...heads].sort((a, b) => a.queueId - b.queueId);
  return createHash('sha256')
    .update(sorted.map((h) => `${h.queueId}:${h.seq}:${h.hash}`).join('\n'), 'utf8')
    .digest('hex');
}

export interface AuditAnchor {
  seq: number;
  /** Epoch ms. */
  at: number;
  recordedBy: string;
  auditSeq: number;
  auditHash: string;
  journalEntries: number;
  journalRows: number;
  journalDigest: string;
  headsRecorded: number;
  prevHash: string;
  hash: string;
}

const headRow = z.object({
  queue_id: z.number(),
  seq: z.number(),
  hash: z.string(),
  anchored_seq: z.number().nullable(),
  anchored_hash: z.string().nullable(),
});

/**
 * Record an anchor: the audit chain head and every entry's journal head (a digest; the heads that
 * changed since the previous anchor in audit_anchor_heads), in one transaction; then log it.
 * Call it periodically (at most every 5 min or 1,000 audit rows) and at shutdown.
 * @example
 * const anchor = await recordAuditAnchor(db, { recordedBy: config.instanceId, logger });
 */
export async function recordAuditAnchor(
  db: Db,
  opts: { recordedBy?: string; logger?: Logger } = {},
): Promise<AuditAnchor> {
  const recordedBy = opts.recordedBy ?? 'spm-orchestrator';
  const anchor = await db.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT pg_advisory_xact_lock(${ANCHOR_LOCK_KEY})`);
    const head = await tx.maybeOne(sql.type(z.object({ seq: z.number(), hash: z.string() }))`
      SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`);
    const heads = await tx.any(sql.type(headRow)`
      SELECT q.id AS queue_id, j.seq, j.hash, a.seq AS anchored_seq, a.hash AS anchored_hash
      FROM patch_test_queue q
      CROSS JOIN LATERAL (SELECT seq, hash FROM patch_transitions t WHERE t.queue_id = q.id ORDER BY seq DESC LIMIT 1) j
      LEFT JOIN LATERAL (SELECT seq, hash FROM audit_anchor_heads h WHERE h.queue_id = q.id ORDER BY anchor_seq DESC LIMIT 1) a ON true
      ORDER BY q.id`);
    const changed = heads.filter((h) => h.anchored_seq !== h.seq || h.anchored_hash !== h.hash);
    const digest = journalHeadsDigest(heads.map((h) => ({ queueId: h.queue_id, seq: h.seq, hash: h.hash })));
    const journalRows = heads.reduce((n, h) => n + h.seq, 0);
    const row = await tx.one(sql.type(
      z.object({ seq: z.number(), at: z.number(), prev_hash: z.string(), hash: z.string() }),
    )`
      INSERT INTO audit_anchors (recorded_by, audit_seq, audit_hash, journal_entries, journal_rows, journal_digest, heads_recorded)
      VALUES (${recordedBy}, ${head?.seq ?? 0}, ${head?.hash ?? GENESIS_HASH}, ${heads.length}, ${journalRows}, ${digest}, ${changed.length})
      RETURNING seq, (extract(epoch FROM at) * 1000)::float8 AS at, prev_hash, hash`);
    if (changed.length > 0) {
      await tx.query(sql.unsafe`
        INSERT INTO audit_anchor_heads (anchor_seq, queue_id, seq, hash)
        SELECT ${row.seq}, h.queue_id, h.seq, h.hash
        FROM ${sql.unnest(
          changed.map((h) => [h.queue_id, h.seq, h.hash]),
          ['int8', 'int4', 'text'],
        )} AS h(queue_id, seq, hash)`);
    }
    return {
      seq: row.seq,
      at: row.at,
      recordedBy,
      auditSeq: head?.seq ?? 0,
      auditHash: head?.hash ?? GENESIS_HASH,
      journalEntries: heads.length,
      journalRows,
      journalDigest: digest,
      headsRecorded: changed.length,
      prevHash: row.prev_hash,
      hash: row.hash,
    } satisfies AuditAnchor;
  });
  opts.logger?.info(
    { audit_anchor: anchor },
    `audit anchor ${anchor.seq}: audit_log head seq ${anchor.auditSeq} ${anchor.auditHash}; ${anchor.journalEntries} journal heads (${anchor.journalRows} rows) digest ${anchor.journalDigest}; anchor hash ${anchor.hash}`,
  );
  return anchor;
}

/** Read access the verifier needs: a pool or a transaction (the tamper test verifies inside one). */
export type Queryable = CommonQueryMethods;
