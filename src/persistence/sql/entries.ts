/**
 * Queries of the queue-entry family: create, claim, fenced snapshot writes with their journal rows
 * and timers, lease renewal. Coordination is in SQL (STYLE rule 12): a returned row means you won.
 */
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { Db } from '../db.ts';
import { chainHash, GENESIS_HASH, JOURNAL_HASH_VERSION, type JournalFields } from '../journal.ts';

const FINAL = sql.fragment`('completed', 'rejected', 'rolled_back', 'removed')`;

export const entryRow = z.object({
  id: z.number(),
  errata_id: z.string(),
  target_os: z.string(),
  status: z.string(),
  machine_version: z.string(),
  snapshot: z.unknown().nullable(),
  revision: z.number(),
  owner_id: z.string().nullable(),
  owner_epoch: z.number(),
  lease_until: z.number().nullable(),
});
export type EntryRow = z.infer<typeof entryRow>;

export function insertEntry(
  tx: DatabaseTransactionConnection,
  e: {
    errataId: string;
    errataVersion: string | null;
    targetOs: string;
    priority: number;
    successScore: number;
    machineVersion: string;
    createdBy: string;
    notes: string | null;
    ownerId: string;
    leaseMs: number;
  },
) {
  return tx.one(sql.type(z.object({ id: z.number(), owner_epoch: z.number() }))`
    INSERT INTO patch_test_queue (errata_id, errata_version, target_os, priority, success_score, machine_version, created_by, notes,
                                  owner_id, owner_epoch, lease_until)
    VALUES (${e.errataId}, ${e.errataVersion}, ${e.targetOs}, ${e.priority}, ${e.successScore}, ${e.machineVersion}, ${e.createdBy}, ${e.notes},
            ${e.ownerId}, 1, now() + make_interval(secs => ${e.leaseMs / 1000}))
    RETURNING id, owner_epoch`);
}

/**
 * Claim non-final entries that are unowned or whose lease expired; with `includeOwn`, also those
 * this replica owned before a restart (same INSTANCE_ID). Bumps the epoch: the previous owner's
 * writes are fenced from now on. Keyset-paginated by id (`afterId`).
 */
export function claimEntries(
  db: Db,
  ownerId: string,
  leaseMs: number,
  limit: number,
  opts: { afterId?: number; includeOwn?: boolean; onlyIds?: number[] } = {},
) {
  const idFilter =
    opts.onlyIds === undefined
      ? sql.fragment`id > ${opts.afterId ?? 0}`
      : sql.fragment`id = ANY(${sql.array(opts.onlyIds, 'int8')})`;
  const own = opts.includeOwn ? sql.fragment`OR owner_id = ${ownerId}` : sql.fragment``;
  return db.any(sql.type(entryRow)`
    WITH claimable AS (
      SELECT id FROM patch_test_queue
      WHERE status NOT IN ${FINAL} AND ${idFilter}
        AND (owner_id IS NULL OR lease_until < now() ${own})
      ORDER BY id
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED)
    UPDATE patch_test_queue q
    SET owner_id = ${ownerId}, owner_epoch = q.owner_epoch + 1, lease_until = now() + make_interval(secs => ${leaseMs / 1000})
    FROM claimable c WHERE q.id = c.id
    RETURNING q.id, q.errata_id, q.target_os, q.status, q.machine_version, q.snapshot, q.revision, q.owner_id, q.owner_epoch,
              extract(epoch FROM q.lease_until) * 1000 AS lease_until`);
}

/** Renew this replica's leases; returns (id, epoch) still held. */
export function renewLeases(db: Db, ownerId: string, leaseMs: number) {
  return db.any(sql.type(z.object({ id: z.number(), owner_epoch: z.number() }))`
    UPDATE patch_test_queue SET lease_until = now() + make_interval(secs => ${leaseMs / 1000})
    WHERE owner_id = ${ownerId} AND status NOT IN ${FINAL}
    RETURNING id, owner_epoch`);
}

/** Give up ownership (graceful shutdown) so another replica can take over without waiting for expiry. */
export function releaseLeases(db: Db, ownerId: string) {
  return db.query(
    sql.unsafe`UPDATE patch_test_queue SET lease_until = now() WHERE owner_id = ${ownerId} AND status NOT IN ${FINAL}`,
  );
}

export interface TransitionWrite {
  event_type: string;
  payload: unknown;
  from_state: string | null;
  to_state: string;
  from_value: unknown;
  to_value: unknown;
  actor: string;
  ip_address: string | null;
  user_agent: string | null;
  request_id: string | null;
  at: number;
}

export class FencedWriteError extends Error {
  constructor(entryId: number) {
    super(`write to entry ${entryId} was fenced: another owner or a newer revision holds it`);
    this.name = 'FencedWriteError';
  }
}

/** The last journal row of an entry (the chain head). */
export interface JournalHead {
  seq: number;
  hash: string;
}

export function loadJournalHead(db: Db | DatabaseTransactionConnection, entryId: number) {
  return db.maybeOne(sql.type(z.object({ seq: z.number(), hash: z.string() }))`
    SELECT seq, hash FROM patch_transitions WHERE queue_id = ${entryId} ORDER BY seq DESC LIMIT 1`);
}

/**
 * The fenced snapshot update (revision + n) and the journal rows (seq contiguous, hash-chained) in
 * ONE statement — atomic on its own, so a caller with nothing else to write needs no BEGIN/COMMIT.
 * Then, when given, the entry's timers are replaced (call inside a transaction in that case).
 * `head` is the chain head the caller knows (the owner is the only writer); null reads it.
 * @returns the new revision and chain head.
 */
export async function writeTransitions(
  conn: Db | DatabaseTransactionConnection,
  w: {
    entryId: number;
    ownerId: string;
    epoch: number;
    revision: number;
    head?: JournalHead | null;
    /** The persisted snapshot as JSON text (the host already serialised it to detect changes). */
    snapshotJson: string;
    status: string;
    stateValue: unknown;
    statusReason: string | null;
    transitions: TransitionWrite[];
    /** The entry's timers after this write; `null` = unchanged since the last write (skip). */
    timers: { name: string; fireAt: number; event: unknown }[] | null;
  },
): Promise<{ revision: number; lastSeq: number; head: JournalHead }> {
  const n = w.transitions.length;
  const head = w.head ?? (await loadJournalHead(conn, w.entryId));
  let prev = head?.hash ?? GENESIS_HASH;
  let seq = head?.seq ?? 0;
  const rows: unknown[][] = [];
  for (let i = 0; i < n; i++) {
    const t = w.transitions[i]!;
    seq += 1;
    // Hashed as stored (payload {} and from_value null when absent), every column covered (v2).
    const fields: JournalFields = {
      queue_id: w.entryId,
      seq,
      event_type: t.event_type,
      payload: t.payload ?? {},
      from_state: t.from_state,
      to_state: t.to_state,
      actor: t.actor,
      ip_address: t.ip_address,
      user_agent: t.user_agent,
      request_id: t.request_id,
      at: t.at,
      hash_version: JOURNAL_HASH_VERSION,
      from_value: t.from_value ?? null,
      to_value: t.to_value,
      revision: w.revision + i + 1,
      owner_epoch: w.epoch,
    };
    const hash = chainHash(prev, fields);
    rows.push([
      seq,
      t.event_type,
      JSON.stringify(t.payload ?? {}),
      t.from_state,
      t.to_state,
      JSON.stringify(t.from_value ?? null),
      JSON.stringify(t.to_value),
      t.actor,
      t.ip_address,
      t.user_agent,
      t.request_id,
      w.revision + i + 1,
      new Date(t.at).toISOString(),
      prev,
      hash,
      JOURNAL_HASH_VERSION,
    ]);
    prev = hash;
  }
  // A fenced-out writer updates no row, so the INSERT ... FROM u inserts nothing either.
  const written = await conn.maybeOne(sql.type(z.object({ revision: z.number(), inserted: z.number() }))`
    WITH u AS (
      UPDATE patch_test_queue
      SET snapshot = ${w.snapshotJson}::jsonb, status = ${w.status}, state_value = ${sql.jsonb(w.stateValue as never)},
          status_reason = ${w.statusReason}, revision = revision + ${n}, updated_at = now(),
          started_at = CASE WHEN started_at IS NULL AND ${w.status} <> 'queued' THEN now() ELSE started_at END,
          completed_at = CASE WHEN ${w.status} IN ('completed', 'rejected', 'rolled_back', 'removed') THEN now() ELSE NULL END
      WHERE id = ${w.entryId} AND revision = ${w.revision} AND owner_epoch = ${w.epoch} AND owner_id = ${w.ownerId}
      RETURNING revision),
    ins AS (
      INSERT INTO patch_transitions (queue_id, seq, event_type, payload, from_state, to_state, from_value, to_value, actor, ip_address,
                                     user_agent, request_id, revision, owner_epoch, at, prev_hash, hash, hash_version)
      SELECT ${w.entryId}, t.seq, t.event_type, t.payload::jsonb, t.from_state, t.to_state, t.from_value::jsonb, t.to_value::jsonb, t.actor,
             t.ip_address, t.user_agent, t.request_id, t.revision, ${w.epoch}, t.at::timestamptz, t.prev_hash, t.hash, t.hash_version
      FROM ${sql.unnest(rows as never, ['int4', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'int8', 'text', 'text', 'text', 'int2'])}
        AS t(seq, event_type, payload, from_state, to_state, from_value, to_value, actor, ip_address, user_agent, request_id, revision, at, prev_hash, hash, hash_version),
        u
      RETURNING 1)
    SELECT u.revision, (SELECT count(*)::int FROM ins) AS inserted FROM u`);
  if (written === null) throw new FencedWriteError(w.entryId);
  if (written.inserted !== n) throw new Error(`entry ${w.entryId}: wrote ${written.inserted} of ${n} journal rows`);
  const result = { revision: written.revision, lastSeq: seq, head: { seq, hash: prev } };

  if (w.timers === null) return result;
  const names = w.timers.map((t) => t.name);
  await conn.query(
    sql.unsafe`DELETE FROM timers WHERE queue_id = ${w.entryId} AND NOT (name = ANY(${sql.array(names, 'text')}))`,
  );
  for (const t of w.timers) {
    await conn.query(sql.unsafe`
      INSERT INTO timers (queue_id, name, fire_at, event, armed_revision)
      VALUES (${w.entryId}, ${t.name}, to_timestamp(${t.fireAt / 1000}), ${sql.jsonb(t.event as never)}, ${written.revision})
      ON CONFLICT (queue_id, name) DO UPDATE
        SET fire_at = excluded.fire_at, event = excluded.event, armed_revision = excluded.armed_revision, claimed_by = NULL, claimed_at = NULL
        WHERE timers.fire_at IS DISTINCT FROM excluded.fire_at`);
  }
  return result;
}

/**
 * Where an entry's snapshot stands (revision and fence) and its journal head: read after a write
 * whose answer was lost, to learn whether it committed before saying anything to anyone.
 */
export function readWriteState(db: Db, id: number) {
  return db.maybeOne(sql.type(
    z.object({
      revision: z.number(),
      owner_id: z.string().nullable(),
      owner_epoch: z.number(),
      seq: z.number().nullable(),
      hash: z.string().nullable(),
    }),
  )`
    SELECT q.revision, q.owner_id, q.owner_epoch, j.seq, j.hash
    FROM patch_test_queue q
    LEFT JOIN LATERAL (SELECT seq, hash FROM patch_transitions WHERE queue_id = q.id ORDER BY seq DESC LIMIT 1) j ON true
    WHERE q.id = ${id}`);
}

export function loadEntry(db: Db | DatabaseTransactionConnection, id: number) {
  return db.maybeOne(sql.type(entryRow)`
    SELECT id, errata_id, target_os, status, machine_version, snapshot, revision, owner_id, owner_epoch,
           extract(epoch FROM lease_until) * 1000 AS lease_until
    FROM patch_test_queue WHERE id = ${id}`);
}

/**
 * A journal row as stored, any hash version (the verifier reports an unknown one as a problem);
 * `journalRow` is the same with the versions this build writes.
 */
export const storedJournalRow = z.object({
  queue_id: z.number(),
  seq: z.number(),
  event_type: z.string(),
  payload: z.unknown(),
  from_state: z.string().nullable(),
  to_state: z.string(),
  from_value: z.unknown(),
  to_value: z.unknown(),
  actor: z.string(),
  ip_address: z.string().nullable(),
  user_agent: z.string().nullable(),
  request_id: z.string().nullable(),
  revision: z.number(),
  owner_epoch: z.number(),
  at: z.number(),
  prev_hash: z.string(),
  hash: z.string(),
  hash_version: z.number(),
});
export const journalRow = storedJournalRow.extend({ hash_version: z.union([z.literal(1), z.literal(2)]) });

/** The columns of `storedJournalRow`, `at` as epoch ms. */
export const JOURNAL_COLUMNS = sql.fragment`
  queue_id, seq, event_type, payload, from_state, to_state, from_value, to_value, actor, ip_address, user_agent, request_id,
  revision, owner_epoch, (extract(epoch FROM at) * 1000)::float8 AS at, prev_hash, hash, hash_version`;

export function loadJournal(db: Db, id: number) {
  return db.any(
    sql.type(journalRow)`SELECT ${JOURNAL_COLUMNS} FROM patch_transitions WHERE queue_id = ${id} ORDER BY seq`,
  );
}
