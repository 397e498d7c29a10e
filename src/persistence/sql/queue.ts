/** Read queries of the queue family (state changes go through the actor host, never here). */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

const ts = z.number().nullable();
/** An entry as the queue lists it (`v_queue_details`); times as epoch ms. */
export const queueItem = z.object({
  id: z.number(),
  errata_id: z.string(),
  errata_version: z.string().nullable(),
  target_os: z.string(),
  status: z.string(),
  state_value: z.unknown(),
  status_reason: z.string().nullable(),
  priority: z.number(),
  priority_override: z.number().nullable(),
  effective_priority: z.number(),
  success_score: z.number(),
  risk_level: z.string(),
  queued_at: z.number(),
  started_at: ts,
  completed_at: ts,
  test_id: z.number().nullable(),
  notes: z.string().nullable(),
  revision: z.number(),
  synopsis: z.string(),
  advisory_type: z.string(),
  severity: z.string(),
  cvss_score: z.number().nullable(),
  cves: z.array(z.string()),
  reboot_suggested: z.boolean(),
});
export type QueueItem = z.infer<typeof queueItem>;

/** Severity from the most to the least urgent, for ORDER BY (the queue and the compliance report). */
export const SEVERITY_RANK = sql.fragment`
  CASE severity WHEN 'Critical' THEN 0 WHEN 'High' THEN 1 WHEN 'Medium' THEN 2 WHEN 'Low' THEN 3 ELSE 4 END`;

/** The queue's sort orders; every one ends on a unique key, so pages do not overlap. */
export const QUEUE_SORTS = {
  score: sql.fragment`success_score DESC, effective_priority DESC, queued_at, id`,
  oldest: sql.fragment`queued_at, id`,
  newest: sql.fragment`queued_at DESC, id DESC`,
  errata: sql.fragment`errata_id, id`,
  severity: sql.fragment`${SEVERITY_RANK}, success_score DESC, id`,
} as const;
export type QueueSort = keyof typeof QUEUE_SORTS;

/** Filters, sort and page of `GET /queue`. */
export interface QueueFilters {
  status?: string[];
  target_os?: string;
  severity?: string;
  /** Text search: errata id, synopsis or CVE (case-insensitive, substring). */
  q?: string;
  /** Score band: minimum and maximum success score. */
  min_score?: number;
  max_score?: number;
  sort?: QueueSort;
  limit: number;
  offset: number;
}

/** Errata id or synopsis containing `q` (LIKE wildcards in it taken literally), or a CVE equal to it. */
function textSearch(q: string) {
  const like = `%${q.replace(/[\\%_]/g, '\\$&')}%`;
  return sql.fragment`(errata_id ILIKE ${like} OR synopsis ILIKE ${like} OR ${q.toUpperCase()} = ANY(cves))`;
}

const QUEUE_ITEM_COLUMNS = sql.fragment`
  id, errata_id, errata_version, target_os, status, state_value, status_reason, priority, priority_override,
  effective_priority, success_score, risk_level, queued_at, started_at, completed_at, test_id, notes, revision,
  synopsis, advisory_type, severity, cvss_score, cves, reboot_suggested`;

/**
 * One page of the queue (filters, sort) and how many entries match.
 * @example
 * const { items, total } = await listQueue(db, { status: ['queued'], sort: 'oldest', limit: 50, offset: 0 });
 */
export async function listQueue(db: Db, f: QueueFilters) {
  const where = sql.join(
    [
      sql.fragment`true`,
      f.status ? sql.fragment`status = ANY(${sql.array(f.status, 'text')})` : sql.fragment`true`,
      f.target_os ? sql.fragment`target_os = ${f.target_os}` : sql.fragment`true`,
      f.severity ? sql.fragment`severity = ${f.severity}` : sql.fragment`true`,
      f.q ? textSearch(f.q) : sql.fragment`true`,
      f.min_score !== undefined ? sql.fragment`success_score >= ${f.min_score}` : sql.fragment`true`,
      f.max_score !== undefined ? sql.fragment`success_score <= ${f.max_score}` : sql.fragment`true`,
    ],
    sql.fragment` AND `,
  );
  const [items, total] = await Promise.all([
    db.any(sql.type(queueItem)`
      SELECT ${QUEUE_ITEM_COLUMNS} FROM v_queue_details WHERE ${where}
      ORDER BY ${QUEUE_SORTS[f.sort ?? 'score']} LIMIT ${f.limit} OFFSET ${f.offset}`),
    db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM v_queue_details WHERE ${where}`),
  ]);
  return { items, total };
}

/**
 * One entry as the queue shows it, or null.
 * @example
 * const entry = await getQueueItem(db, 12);
 */
export async function getQueueItem(db: Db, id: number) {
  return db.maybeOne(sql.type(queueItem)`SELECT ${QUEUE_ITEM_COLUMNS} FROM v_queue_details WHERE id = ${id}`);
}

const keyCount = z.object({ k: z.string(), n: z.number() });

/**
 * How many entries each status has (only statuses with entries, by name): health, stats and reports.
 * @example
 * await countEntriesByStatus(db); // { pending_approval: 2, queued: 5 }
 */
export async function countEntriesByStatus(db: Db): Promise<Record<string, number>> {
  const rows = await db.any(sql.type(keyCount)`
    SELECT status AS k, count(*)::int AS n FROM patch_test_queue GROUP BY status ORDER BY status`);
  return Object.fromEntries(rows.map((r) => [r.k, r.n]));
}

/**
 * Entries per status and per OS, and the average score of the queued ones (`GET /queue/stats`).
 * @example
 * const { total, by_status } = await queueStats(db);
 */
export async function queueStats(db: Db) {
  const [byStatus, byOs, agg] = await Promise.all([
    countEntriesByStatus(db),
    db.any(sql.type(keyCount)`
      SELECT target_os AS k, count(*)::int AS n FROM patch_test_queue GROUP BY target_os ORDER BY target_os`),
    db.one(sql.type(z.object({ total: z.number(), avg_score: z.number().nullable() }))`
      SELECT count(*)::int AS total, round(avg(success_score) FILTER (WHERE status = 'queued'), 1)::float8 AS avg_score
      FROM patch_test_queue`),
  ]);
  return {
    total: agg.total,
    by_status: byStatus,
    by_os: Object.fromEntries(byOs.map((r) => [r.k, r.n])),
    avg_score_queued: agg.avg_score,
  };
}

/**
 * What queueing needs of each known errata: its OS, version, severity and stored score (ids not cached are absent).
 * @example
 * const known = await getErrataForQueue(db, ['USN-7000-1']);
 */
export function getErrataForQueue(db: Db, ids: string[]) {
  return db.any(sql.type(
    z.object({
      errata_id: z.string(),
      target_os: z.string(),
      errata_version: z.string().nullable(),
      success_score: z.number().nullable(),
      severity: z.string().nullable(),
    }),
  )`
    SELECT e.errata_id, e.target_os, e.errata_version, r.success_score, e.severity
    FROM errata_cache e LEFT JOIN patch_risk_profile r ON r.errata_id = e.errata_id
    WHERE e.errata_id = ANY(${sql.array(ids, 'text')})`);
}

/**
 * Set the fields given (null clears one; an absent field keeps its value); null when there is no such entry.
 * @example
 * await updateQueueFields(db, 12, { notes: null });
 */
export function updateQueueFields(
  db: Db | DatabaseTransactionConnection,
  id: number,
  f: { priority_override?: number | null; notes?: string | null },
) {
  const setPriority = f.priority_override !== undefined;
  const setNotes = f.notes !== undefined;
  return db.maybeOne(sql.type(z.object({ id: z.number() }))`
    UPDATE patch_test_queue SET
      priority_override = CASE WHEN ${setPriority} THEN ${f.priority_override ?? null}::int ELSE priority_override END,
      notes = CASE WHEN ${setNotes} THEN ${f.notes ?? null}::text ELSE notes END,
      updated_at = now()
    WHERE id = ${id} RETURNING id`);
}

/**
 * An errata's stored risk profile (every column), or null before it was ever profiled.
 * @example
 * const profile = await getRiskProfile(db, 'USN-7000-1');
 */
export function getRiskProfile(db: Db, errataId: string) {
  return db.maybeOne(
    sql.type(z.object({}).passthrough())`SELECT * FROM patch_risk_profile WHERE errata_id = ${errataId}`,
  );
}

/** Filters and page of `GET /risk-profile`. */
export interface RiskProfileFilters {
  /** Inclusive success-score band; absent = every profile. */
  band?: readonly [number, number] | undefined;
  limit: number;
  offset: number;
}

/**
 * One page of stored risk profiles, lowest score first, and how many match.
 * @example
 * const { items, total } = await listRiskProfiles(db, { band: [60, 79], limit: 100, offset: 0 });
 */
export async function listRiskProfiles(db: Db, f: RiskProfileFilters) {
  const where = f.band ? sql.fragment`success_score BETWEEN ${f.band[0]} AND ${f.band[1]}` : sql.fragment`true`;
  const items = await db.any(sql.type(z.object({}).passthrough())`
    SELECT * FROM patch_risk_profile WHERE ${where}
    ORDER BY success_score, errata_id LIMIT ${f.limit} OFFSET ${f.offset}`);
  const total = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM patch_risk_profile WHERE ${where}`);
  return { items, total };
}

/**
 * Which of the given errata ids are in the errata cache.
 * @example
 * await findCachedErrataIds(db, ['USN-7000-1', 'NOPE']); // ['USN-7000-1']
 */
export function findCachedErrataIds(db: Db, ids: string[]): Promise<readonly string[]> {
  return db.anyFirst(sql.type(z.object({ id: z.string() }))`
    SELECT errata_id AS id FROM errata_cache WHERE errata_id = ANY(${sql.array(ids, 'text')})`);
}

/**
 * An errata as the entry detail shows it, or null.
 * @example
 * const errata = await getErrata(db, 'USN-7000-1');
 */
export function getErrata(db: Db, errataId: string) {
  return db.maybeOne(sql.type(z.object({}).passthrough())`
    SELECT errata_id, synopsis, description, advisory_type, advisory_status, severity, cvss_score, cves, packages,
           target_os, issue_date, update_date, errata_version, reboot_suggested
    FROM errata_cache WHERE errata_id = ${errataId}`);
}

/** A test or phase row, every column. */
export const testRow = z.object({}).passthrough();

/**
 * An entry's test runs (every column), first attempt first.
 * @example
 * const latest = (await testsOfEntry(db, 12)).at(-1);
 */
export function testsOfEntry(db: Db, id: number) {
  return db.any(sql.type(testRow)`SELECT * FROM patch_tests WHERE queue_id = ${id} ORDER BY attempt`);
}

/**
 * A test run (every column), or null.
 * @example
 * const test = await getTest(db, 4);
 */
export function getTest(db: Db, testId: number) {
  return db.maybeOne(sql.type(testRow)`SELECT * FROM patch_tests WHERE id = ${testId}`);
}

/**
 * A test run's phases (every column) in the order they started.
 * @example
 * const phases = await getTestPhases(db, 4);
 */
export function getTestPhases(db: Db, testId: number) {
  return db.any(sql.type(testRow)`SELECT * FROM patch_test_phases WHERE test_id = ${testId} ORDER BY started_at, id`);
}

/**
 * The entries waiting for a decision, the longest waiting first.
 * @example
 * const rows = await pendingApprovals(db);
 */
export function pendingApprovals(db: Db) {
  return db.any(sql.type(z.object({}).passthrough())`
    SELECT id, errata_id, target_os, success_score, test_id, synopsis, severity, cves, test_result, tested_at,
           required_reboot, pending_since, hours_pending
    FROM v_pending_approvals ORDER BY pending_since NULLS LAST, id`);
}

/** The next entry a lane would test: success_score DESC, priority DESC, queued_at. */
export function nextQueued(db: Db, targetOs: string | null) {
  return db.maybeOneFirst(sql.type(z.object({ id: z.number() }))`
    SELECT id FROM patch_test_queue WHERE status = 'queued' AND (${targetOs}::text IS NULL OR target_os = ${targetOs})
    ORDER BY success_score DESC, COALESCE(priority_override, priority) DESC, queued_at, id LIMIT 1`);
}
