/**
 * `spm-orchestrator audit verify`: check the audit trail end to end.
 *
 * - audit_log: seq contiguous from 1, each prev_hash the previous row's hash, each hash recomputed
 *   from the row as PostgreSQL renders it (src/persistence/auditChain.ts);
 * - patch_transitions: every entry's chain (src/persistence/journal.ts, hash versions 1 and 2), and
 *   the entry's revision equal to its journal's last seq;
 * - audit_anchors: their own chain; each anchor's audit head present with the same hash (rows
 *   deleted from the end of audit_log show as missing); every journal head an anchor recorded
 *   present with the same hash; the newest anchor's digest over all journal heads.
 *
 * After a break the check picks the chain up again at the next row, so every damaged place is
 * listed once; `firstBad` is the first in the order audit_log, journal (by entry), anchors.
 * Nothing after the newest anchor can be told from a legitimate append: anchor often.
 */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import {
  ANCHOR_ROW_TEXT,
  anchorCanonical,
  anchorRowText,
  AUDIT_ROW_TEXT,
  auditCanonical,
  auditRowText,
  chainHashText,
  journalHeadsDigest,
  type AnchorRowText,
  type Queryable,
} from './auditChain.ts';
import type { Db } from './db.ts';
import { JOURNAL_COLUMNS, storedJournalRow } from './sql/entries.ts';
import { GENESIS_HASH, verifyChain, type JournalRow } from './journal.ts';

export type AuditTable =
  | 'audit_log'
  | 'patch_transitions'
  | 'patch_test_queue'
  | 'audit_anchors'
  | 'audit_anchor_heads';

export interface AuditProblem {
  table: AuditTable;
  /** audit_log / audit_anchors: the row's seq; patch_transitions: the entry's seq. */
  seq?: number;
  /** patch_transitions, patch_test_queue, audit_anchor_heads: the entry. */
  queueId?: number;
  /** audit_log: the row's id. */
  id?: number;
  why: string;
}

export interface AuditVerifyReport {
  auditRows: number;
  journalRows: number;
  entries: number;
  anchors: number;
  /** The problems found, in order (at most `maxProblems`); `problemCount` counts them all. */
  problems: AuditProblem[];
  problemCount: number;
  /** problems[0], or null when intact. */
  firstBad: AuditProblem | null;
  intact: boolean;
}

/** `audit_log seq 17 (id 17)`, `patch_transitions entry 3 seq 5`, `audit_anchors seq 2`, … */
export function problemRow(p: AuditProblem): string {
  const parts: string[] = [p.table];
  if (p.queueId !== undefined) parts.push(`entry ${p.queueId}`);
  if (p.seq !== undefined) parts.push(`seq ${p.seq}`);
  if (p.id !== undefined) parts.push(`(id ${p.id})`);
  return parts.join(' ');
}

export function describeProblem(p: AuditProblem): string {
  return `${problemRow(p)}: ${p.why}`;
}

const short = (h: string | null) => (h === null ? 'NULL' : `${h.slice(0, 12)}…`);

interface AnchoredHead {
  anchorSeq: number;
  seq: number;
  hash: string;
}

export interface VerifyOptions {
  /** Rows per page (keyset pagination). */
  pageSize?: number;
  /** Problems kept in the report (all are counted). */
  maxProblems?: number;
}

/**
 * Verify the audit chain, every entry's journal chain and the anchors. Given a pool, it reads in
 * one REPEATABLE READ, READ ONLY transaction, so a daemon writing meanwhile (a revision and its
 * journal rows, an anchor) is seen before or after, never half; given a transaction, it reads in it.
 * @example
 * const report = await verifyAudit(db);
 * if (!report.intact) console.log(describeProblem(report.firstBad!));
 */
export async function verifyAudit(
  db: Db | DatabaseTransactionConnection,
  opts: VerifyOptions = {},
): Promise<AuditVerifyReport> {
  if ('connect' in db) {
    return db.transaction(async (tx) => {
      await tx.query(sql.unsafe`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`);
      return verifyIn(tx, opts);
    });
  }
  return verifyIn(db, opts);
}

async function verifyIn(db: Queryable, opts: VerifyOptions): Promise<AuditVerifyReport> {
  const pageSize = opts.pageSize ?? 5000;
  const maxProblems = opts.maxProblems ?? 1000;
  const auditProblems: AuditProblem[] = [];
  const journalProblems: AuditProblem[] = [];
  const anchorProblems: AuditProblem[] = [];
  let total = 0;
  const add = (list: AuditProblem[], p: AuditProblem) => {
    if (total++ < maxProblems) list.push(p);
  };

  // ---------------------------------------------------------------- anchors (their own chain)
  const anchors = (await db.any(
    sql.type(anchorRowText)`SELECT ${ANCHOR_ROW_TEXT} FROM audit_anchors ORDER BY audit_anchors.seq`,
  )) as readonly AnchorRowText[];
  {
    let prev = GENESIS_HASH;
    let lastAuditSeq = 0;
    anchors.forEach((a, i) => {
      const seq = Number(a.seq);
      const why: string[] = [];
      if (seq !== i + 1) why.push(`expected seq ${i + 1}`);
      if (a.prev_hash !== prev) why.push('prev_hash does not match the previous anchor');
      if (a.hash !== chainHashText(a.prev_hash ?? '', anchorCanonical(a))) why.push('hash does not match the row');
      if (Number(a.audit_seq) < lastAuditSeq)
        why.push(`audit head seq ${a.audit_seq} is older than the previous anchor's (${lastAuditSeq})`);
      if (Number(a.audit_seq) === 0 && a.audit_hash !== GENESIS_HASH)
        why.push('audit head seq 0 with a hash other than the genesis');
      if (why.length > 0) add(anchorProblems, { table: 'audit_anchors', seq, why: why.join('; ') });
      prev = a.hash ?? '';
      lastAuditSeq = Math.max(lastAuditSeq, Number(a.audit_seq));
    });
  }
  const anchorsByAuditSeq = new Map<number, AnchorRowText[]>();
  for (const a of anchors) {
    const s = Number(a.audit_seq);
    if (s > 0) anchorsByAuditSeq.set(s, [...(anchorsByAuditSeq.get(s) ?? []), a]); // few anchors share a head
  }

  // ---------------------------------------------------------------- audit_log
  let auditRows = 0;
  let lastSeq = 0;
  {
    let prev = GENESIS_HASH;
    let expected = 1;
    for (;;) {
      const page = await db.any(sql.type(auditRowText)`
        SELECT ${AUDIT_ROW_TEXT} FROM audit_log WHERE seq > ${lastSeq} ORDER BY audit_log.seq LIMIT ${pageSize}`);
      for (const r of page) {
        const seq = Number(r.seq);
        const why: string[] = [];
        if (seq !== expected)
          why.push(
            seq > expected
              ? `expected seq ${expected}: ${expected === seq - 1 ? `seq ${expected} is` : `seqs ${expected}..${seq - 1} are`} missing`
              : `expected seq ${expected}`,
          );
        if (r.prev_hash !== prev) why.push('prev_hash does not match the previous row');
        if (r.hash !== chainHashText(r.prev_hash ?? '', auditCanonical(r))) why.push('hash does not match the row');
        for (const a of anchorsByAuditSeq.get(seq) ?? []) {
          if (a.audit_hash !== r.hash)
            why.push(`hash ${short(r.hash)} differs from anchor ${a.seq}'s ${short(a.audit_hash)}`);
        }
        if (why.length > 0) add(auditProblems, { table: 'audit_log', seq, id: Number(r.id), why: why.join('; ') });
        prev = r.hash ?? '';
        expected = seq + 1;
        lastSeq = seq;
        auditRows++;
      }
      if (page.length < pageSize) break;
    }
    // Anchored heads the table no longer has: the newest rows deleted, or rows in the middle.
    const seen = new Set<number>();
    for (const a of anchors) {
      const s = Number(a.audit_seq);
      if (s <= 0 || seen.has(s)) continue;
      seen.add(s);
      if (s > lastSeq) {
        add(auditProblems, {
          table: 'audit_log',
          seq: lastSeq + 1,
          why: `missing: anchor ${a.seq} recorded the head at seq ${s} (${short(a.audit_hash)}) but the chain ends at seq ${lastSeq}: the newest rows were deleted`,
        });
        break;
      }
    }
  }

  // ---------------------------------------------------------------- journal
  const revisions = new Map<number, number>();
  for (const r of await db.any(
    sql.type(z.object({ id: z.number(), revision: z.number() }))`SELECT id, revision FROM patch_test_queue ORDER BY id`,
  )) {
    revisions.set(r.id, r.revision);
  }
  const anchoredHeads = new Map<number, AnchoredHead[]>();
  const headsPerAnchor = new Map<number, number>();
  {
    let after = { q: 0, a: 0 };
    for (;;) {
      const page = await db.any(sql.type(
        z.object({ anchor_seq: z.number(), queue_id: z.number(), seq: z.number(), hash: z.string() }),
      )`
        SELECT anchor_seq, queue_id, seq, hash FROM audit_anchor_heads
        WHERE (queue_id, anchor_seq) > (${after.q}, ${after.a}) ORDER BY queue_id, anchor_seq LIMIT ${pageSize}`);
      for (const h of page) {
        let list = anchoredHeads.get(h.queue_id);
        if (list === undefined) {
          list = [];
          anchoredHeads.set(h.queue_id, list);
        }
        list.push({ anchorSeq: h.anchor_seq, seq: h.seq, hash: h.hash });
        headsPerAnchor.set(h.anchor_seq, (headsPerAnchor.get(h.anchor_seq) ?? 0) + 1);
        after = { q: h.queue_id, a: h.anchor_seq };
      }
      if (page.length < pageSize) break;
    }
  }

  let journalRows = 0;
  let entries = 0;
  const checked = new Set<number>();
  const checkEntry = (queueId: number, rows: JournalRow[]) => {
    checked.add(queueId);
    const broken = verifyChain(rows);
    if (broken) add(journalProblems, { table: 'patch_transitions', queueId, seq: broken.seq, why: broken.problem });
    const end = rows.length === 0 ? 0 : rows[rows.length - 1]!.seq;
    const bySeq = new Map(rows.map((r) => [r.seq, r.hash]));
    let lastAnchored = 0;
    for (const h of anchoredHeads.get(queueId) ?? []) {
      const hash = bySeq.get(h.seq);
      let why: string | null = null;
      if (h.seq < lastAnchored)
        why = `anchor ${h.anchorSeq} recorded head seq ${h.seq}, behind an earlier anchor's seq ${lastAnchored}`;
      else if (hash === undefined && h.seq > end) {
        why = `missing: anchor ${h.anchorSeq} recorded the head at seq ${h.seq} (${short(h.hash)}) but the journal ends at seq ${end}: the newest rows were deleted`;
      } else if (hash === undefined)
        why = `missing: anchor ${h.anchorSeq} recorded the head at seq ${h.seq} (${short(h.hash)})`;
      else if (hash !== h.hash) why = `hash ${short(hash)} differs from anchor ${h.anchorSeq}'s ${short(h.hash)}`;
      lastAnchored = Math.max(lastAnchored, h.seq);
      if (why !== null) {
        add(journalProblems, {
          table: 'patch_transitions',
          queueId,
          seq: hash === undefined && h.seq > end ? end + 1 : h.seq,
          why,
        });
        break;
      }
    }
    const revision = revisions.get(queueId);
    if (revision === undefined)
      add(journalProblems, {
        table: 'patch_test_queue',
        queueId,
        why: 'journal rows for an entry that does not exist',
      });
    else if (revision !== end)
      add(journalProblems, {
        table: 'patch_test_queue',
        queueId,
        why: `revision ${revision} but the journal ends at seq ${end}`,
      });
  };
  {
    let after = { q: 0, s: 0 };
    let current: { queueId: number; rows: JournalRow[] } | null = null;
    for (;;) {
      const page = await db.any(sql.type(storedJournalRow)`
        SELECT ${JOURNAL_COLUMNS} FROM patch_transitions WHERE (queue_id, seq) > (${after.q}, ${after.s}) ORDER BY queue_id, seq LIMIT ${pageSize}`);
      for (const r of page) {
        if (current === null || current.queueId !== r.queue_id) {
          if (current) checkEntry(current.queueId, current.rows);
          current = { queueId: r.queue_id, rows: [] };
          entries++;
        }
        current.rows.push(r as JournalRow);
        journalRows++;
        after = { q: r.queue_id, s: r.seq };
      }
      if (page.length < pageSize) break;
    }
    if (current) checkEntry(current.queueId, current.rows);
    // Entries without any journal row: anchored heads or a revision say there were some.
    const rest = [...new Set([...revisions.keys(), ...anchoredHeads.keys()])]
      .filter((id) => !checked.has(id))
      .sort((a, b) => a - b);
    for (const id of rest) {
      if ((anchoredHeads.get(id)?.length ?? 0) > 0 || (revisions.get(id) ?? 0) !== 0) checkEntry(id, []);
    }
    journalProblems.sort((a, b) => (a.queueId ?? 0) - (b.queueId ?? 0));
  }

  // ---------------------------------------------------------------- anchors vs their heads
  for (const a of anchors) {
    const seq = Number(a.seq);
    const held = headsPerAnchor.get(seq) ?? 0;
    if (held !== Number(a.heads_recorded))
      add(anchorProblems, {
        table: 'audit_anchors',
        seq,
        why: `recorded ${a.heads_recorded} journal heads, audit_anchor_heads holds ${held}`,
      });
  }
  for (const s of headsPerAnchor.keys()) {
    if (s < 1 || s > anchors.length)
      add(anchorProblems, {
        table: 'audit_anchor_heads',
        seq: s,
        why: 'journal heads of an anchor that does not exist',
      });
  }
  const latest = anchors[anchors.length - 1];
  if (latest) {
    // Every head change is recorded, so the newest anchored head per entry is the set of heads then.
    const heads = [...anchoredHeads.entries()]
      .map(([queueId, hs]) => {
        const h = hs.filter((x) => x.anchorSeq <= Number(latest.seq)).at(-1);
        return h === undefined ? null : { queueId, seq: h.seq, hash: h.hash };
      })
      .filter((h): h is { queueId: number; seq: number; hash: string } => h !== null);
    const why: string[] = [];
    if (heads.length !== Number(latest.journal_entries))
      why.push(`anchored ${latest.journal_entries} journal heads, audit_anchor_heads adds up to ${heads.length}`);
    const rows = heads.reduce((n, h) => n + h.seq, 0);
    if (rows !== Number(latest.journal_rows))
      why.push(`anchored ${latest.journal_rows} journal rows, the anchored heads add up to ${rows}`);
    if (journalHeadsDigest(heads) !== latest.journal_digest)
      why.push('journal digest does not match the anchored heads');
    if (journalRows < Number(latest.journal_rows))
      why.push(`anchored ${latest.journal_rows} journal rows, patch_transitions holds ${journalRows}`);
    if (why.length > 0) add(anchorProblems, { table: 'audit_anchors', seq: Number(latest.seq), why: why.join('; ') });
  }

  const problems = [...auditProblems, ...journalProblems, ...anchorProblems];
  return {
    auditRows,
    journalRows,
    entries,
    anchors: anchors.length,
    problems,
    problemCount: total,
    firstBad: problems[0] ?? null,
    intact: problems.length === 0,
  };
}
