/** Queries of the errata_cache and sync_runs families. */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';

export interface SyncedErrata {
  errataId: string;
  uyuniId: number;
  synopsis: string;
  advisoryType: string;
  advisoryStatus: string | null;
  targetOs: string;
  systemIds: number[];
  issueDate: string | null;
  updateDate: string | null;
  version: string | null;
  rebootSuggested: boolean;
  /** Fetched for new Security Advisories only; null = keep what the cache has. */
  cves: string[] | null;
}

export function existingErrata(db: Db | DatabaseTransactionConnection, ids: string[]) {
  return db.any(sql.type(
    z.object({
      errata_id: z.string(),
      errata_version: z.string().nullable(),
      synopsis: z.string(),
      affected_system_ids: z.array(z.number()),
      advisory_status: z.string().nullable(),
    }),
  )`
    SELECT errata_id, errata_version, synopsis, affected_system_ids, advisory_status FROM errata_cache WHERE errata_id = ANY(${sql.array(ids, 'text')})`);
}

const pgIntArray = (xs: number[]) => `{${xs.join(',')}}`;
const pgTextArray = (xs: string[]) => `{${xs.map((x) => `"${x.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;

/** The columns insert and update share, as unnest() rows: errata_id … reboot, and their types. */
const syncedTuple = (r: SyncedErrata) => [
  r.errataId,
  r.uyuniId,
  r.synopsis,
  r.advisoryType,
  r.advisoryStatus,
  r.targetOs,
  pgIntArray(r.systemIds),
  r.issueDate,
  r.updateDate,
  r.version,
  r.rebootSuggested,
];
const SYNCED_TYPES: string[] = ['text', 'int4', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'bool'];

/** Insert new errata (UYUNI severity mapping: Security → Medium, others → Low until NVD says better). */
export async function insertErrata(tx: DatabaseTransactionConnection, rows: SyncedErrata[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000).map((r) => [...syncedTuple(r), pgTextArray(r.cves ?? [])]);
    await tx.query(sql.unsafe`
      INSERT INTO errata_cache (errata_id, uyuni_errata_id, synopsis, advisory_type, advisory_status, target_os, affected_system_ids, issue_date, update_date,
                                errata_version, reboot_suggested, cves, severity)
      SELECT t.errata_id, t.uyuni_id, t.synopsis, t.advisory_type, t.advisory_status, t.target_os, t.systems::int[], t.issue_date, t.update_date,
             t.version, t.reboot, t.cves::text[], CASE WHEN t.advisory_type = 'Security Advisory' THEN 'Medium' ELSE 'Low' END
      FROM ${sql.unnest(chunk as never, [...SYNCED_TYPES, 'text'])}
        AS t(errata_id, uyuni_id, synopsis, advisory_type, advisory_status, target_os, systems, issue_date, update_date, version, reboot, cves)`);
  }
}

/** Update known errata; never touches description, packages, CVEs or an NVD severity. */
export async function updateErrata(tx: DatabaseTransactionConnection, rows: SyncedErrata[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000).map(syncedTuple);
    await tx.query(sql.unsafe`
      UPDATE errata_cache e SET uyuni_errata_id = t.uyuni_id, synopsis = t.synopsis, advisory_type = t.advisory_type, advisory_status = t.advisory_status,
             target_os = t.target_os, affected_system_ids = t.systems::int[], issue_date = t.issue_date, update_date = t.update_date,
             errata_version = t.version, reboot_suggested = t.reboot, synced_at = now(), updated_at = now()
      FROM ${sql.unnest(chunk as never, [...SYNCED_TYPES])}
        AS t(errata_id, uyuni_id, synopsis, advisory_type, advisory_status, target_os, systems, issue_date, update_date, version, reboot)
      WHERE e.errata_id = t.errata_id`);
  }
}

export const syncRunRow = z.object({
  id: z.number(),
  trigger: z.string(),
  status: z.string(),
  started_at: z.number(),
  finished_at: z.number().nullable(),
  stats: z.unknown(),
  error: z.string().nullable(),
});

/** Start a run; null when another one is running (the unique index says so). */
export async function startSyncRun(db: Db, trigger: string) {
  try {
    return await db.one(
      sql.type(
        z.object({ id: z.number() }),
      )`INSERT INTO sync_runs (trigger, status) VALUES (${trigger}, 'running') RETURNING id`,
    );
  } catch (raw) {
    if (/uq_sync_running|unique/i.test((raw as Error).message)) return null;
    throw raw;
  }
}

export function finishSyncRun(
  db: Db,
  id: number,
  status: 'completed' | 'failed',
  stats: unknown,
  error: string | null,
) {
  return db.query(
    sql.unsafe`UPDATE sync_runs SET status = ${status}, stats = ${sql.jsonb(stats as never)}, error = ${error}, finished_at = now() WHERE id = ${id}`,
  );
}

/** A run left `running` by a daemon that stopped during it. */
export function failInterruptedSyncRuns(db: Db) {
  return db.query(
    sql.unsafe`UPDATE sync_runs SET status = 'failed', error = 'interrupted: the daemon stopped during the sync', finished_at = now() WHERE status = 'running'`,
  );
}

export function lastSyncRun(db: Db) {
  return db.maybeOne(
    sql.type(
      syncRunRow,
    )`SELECT id, trigger, status, started_at, finished_at, stats, error FROM sync_runs ORDER BY id DESC LIMIT 1`,
  );
}

export interface SyncedSystem {
  id: number;
  name: string;
  group: string;
  role: 'test' | 'prod';
  os: string;
  lastCheckin: Date | null;
}

/** Replace the systems table with what the sync saw (same transaction as the errata). */
export async function replaceSystems(tx: DatabaseTransactionConnection, systems: SyncedSystem[]): Promise<void> {
  // A system in two groups keeps the first (test groups first: a test system is never a wave target).
  const seen = new Map<number, SyncedSystem>();
  for (const s of [...systems].sort((a, b) => (a.role === b.role ? 0 : a.role === 'test' ? -1 : 1)))
    if (!seen.has(s.id)) seen.set(s.id, s);
  const rows = [...seen.values()];
  await tx.query(
    sql.unsafe`DELETE FROM uyuni_systems WHERE NOT (system_id = ANY(${sql.array(
      rows.map((r) => r.id),
      'int4',
    )}))`,
  );
  if (rows.length === 0) return;
  await tx.query(sql.unsafe`
    INSERT INTO uyuni_systems (system_id, name, group_name, role, target_os, last_checkin)
    SELECT * FROM unnest(${sql.array(
      rows.map((r) => r.id),
      'int4',
    )}::int4[], ${sql.array(
      rows.map((r) => r.name),
      'text',
    )}::text[],
                         ${sql.array(
                           rows.map((r) => r.group),
                           'text',
                         )}::text[], ${sql.array(
                           rows.map((r) => r.role),
                           'text',
                         )}::text[],
                         ${sql.array(
                           rows.map((r) => r.os),
                           'text',
                         )}::text[], ${sql.array(rows.map((r) => r.lastCheckin?.toISOString() ?? null) as string[], 'timestamptz')}::timestamptz[])
    ON CONFLICT (system_id) DO UPDATE SET name = excluded.name, group_name = excluded.group_name, role = excluded.role,
      target_os = excluded.target_os, last_checkin = excluded.last_checkin, synced_at = now()`);
}
