/**
 * The transition journal's hash chain: `hash = sha256(prev_hash ‖ canonical JSON of the row)`,
 * per entry, starting from a genesis of 64 zeros. Canonical JSON sorts object keys so the hash
 * does not depend on key order or on the code version that wrote the row.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export interface JournalFields {
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

export function chainHash(prevHash: string, row: JournalFields): string {
  return createHash('sha256').update(prevHash).update(canonicalJson(row)).digest('hex');
}

/**
 * Verify an entry's journal: seq contiguous from 1, each prev_hash the previous hash, each hash right.
 * @returns null when intact, else where and why it breaks.
 */
export function verifyChain(rows: readonly (JournalFields & { prev_hash: string; hash: string })[]): { seq: number; problem: string } | null {
  let prev = GENESIS_HASH;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    if (r.seq !== i + 1) return { seq: r.seq, problem: `expected seq ${i + 1}` };
    if (r.prev_hash !== prev) return { seq: r.seq, problem: 'prev_hash does not match the previous row' };
    const fields: JournalFields = {
      queue_id: r.queue_id, seq: r.seq, event_type: r.event_type, payload: r.payload, from_state: r.from_state, to_state: r.to_state,
      actor: r.actor, ip_address: r.ip_address, user_agent: r.user_agent, request_id: r.request_id, at: r.at,
    };
    if (r.hash !== chainHash(prev, fields)) return { seq: r.seq, problem: 'hash does not match the row' };
    prev = r.hash;
  }
  return null;
}
