/**
 * The transition journal's hash chain: `hash = sha256(prev_hash ‖ canonical JSON of the row)`,
 * per entry, starting from a genesis of 64 zeros. Canonical JSON sorts object keys so the hash
 * does not depend on key order or on the code version that wrote the row.
 *
 * Each row carries the version of the hash that covers it (`hash_version`):
 * - 1 (rows written before migration 0005): queue_id, seq, event_type, payload, from_state,
 *   to_state, actor, ip_address, user_agent, request_id, at;
 * - 2 (every row written since): version 1's fields plus from_value, to_value, revision,
 *   owner_epoch and the version itself, so none of the row's columns can change unnoticed.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);
/** The hash version writeTransitions writes. */
export const JOURNAL_HASH_VERSION = 2;

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The fields a version-1 hash covers. */
export interface JournalFieldsV1 {
  queue_id: number;
  seq: number;
  event_type: string;
  payload: unknown;
  from_state: string | null;
  to_state: string;
  actor: string;
  ip_address: string | null;
  user_agent: string | null;
  request_id: string | null;
  at: number;
}

/** The fields a version-2 hash covers: every column of the row but the hashes themselves. */
export interface JournalFields extends JournalFieldsV1 {
  hash_version: 1 | 2;
  from_value: unknown;
  to_value: unknown;
  revision: number;
  owner_epoch: number;
}

/** A journal row as read back, for verification. */
export type JournalRow = JournalFields & { prev_hash: string; hash: string };

/** The object a row's hash is taken over, for the row's hash version. */
function hashedObject(row: JournalFields): Record<string, unknown> {
  const v1: JournalFieldsV1 = {
    queue_id: row.queue_id,
    seq: row.seq,
    event_type: row.event_type,
    payload: row.payload,
    from_state: row.from_state,
    to_state: row.to_state,
    actor: row.actor,
    ip_address: row.ip_address,
    user_agent: row.user_agent,
    request_id: row.request_id,
    at: row.at,
  };
  if (row.hash_version === 1) return { ...v1 };
  if (row.hash_version === 2) {
    return {
      ...v1,
      hash_version: 2,
      from_value: row.from_value ?? null,
      to_value: row.to_value ?? null,
      revision: row.revision,
      owner_epoch: row.owner_epoch,
    };
  }
  throw new Error(`unknown journal hash version ${String(row.hash_version)}`);
}

/** The row's hash given the previous row's, per its `hash_version`. */
export function chainHash(prevHash: string, row: JournalFields): string {
  return createHash('sha256')
    .update(prevHash)
    .update(canonicalJson(hashedObject(row)))
    .digest('hex');
}

/**
 * Verify an entry's journal: seq contiguous from 1, each prev_hash the previous hash, each hash
 * right for its version, and no version-1 row after a version-2 one (a downgrade would cover less).
 * @returns null when intact, else where and why it breaks.
 */
export function verifyChain(rows: readonly JournalRow[]): { seq: number; problem: string } | null {
  let prev = GENESIS_HASH;
  let version = 1;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (r.seq !== i + 1) return { seq: r.seq, problem: `expected seq ${i + 1}` };
    if (r.prev_hash !== prev) return { seq: r.seq, problem: 'prev_hash does not match the previous row' };
    if (r.hash_version !== 1 && r.hash_version !== 2)
      return { seq: r.seq, problem: `unknown hash_version ${String(r.hash_version)}` };
    if (r.hash_version < version)
      return { seq: r.seq, problem: `hash_version ${r.hash_version} after a version ${version} row` };
    version = r.hash_version;
    if (r.hash !== chainHash(prev, r)) return { seq: r.seq, problem: 'hash does not match the row' };
    prev = r.hash;
  }
  return null;
}
