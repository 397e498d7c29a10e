/**
 * Audit-trail integrity (the catalogue's T14, issue 12).
 *
 * A realistic trail — entries run through the real host against the fake world (journal rows),
 * a few hundred audit rows written through insertAudit (some concurrently), anchors taken along
 * the way and at the end as the daemon does at shutdown — is cloned into a scratch database. An
 * attacker with database access (a superuser: triggers off via session_replication_role) then
 * tampers with audit_log or patch_transitions, 1,000 times at random, each inside a transaction
 * that is rolled back: update a field (and sometimes re-hash the row), delete a row, insert a
 * forged row (chained to its predecessor), reorder two rows, delete the newest rows. verifyAudit
 * must flag every one, with the first bad row at the tampered place.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { sql, type DatabaseTransactionConnection } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { recordAuditAnchor } from '../src/persistence/auditChain.ts';
import { JOURNAL_COLUMNS, storedJournalRow } from '../src/persistence/sql/entries.ts';
import { prng } from '../src/random.ts';
import { describeProblem, problemRow, verifyAudit, type AuditProblem } from '../src/persistence/auditVerify.ts';
import { createDb, type Db } from '../src/persistence/db.ts';
import { chainHash, GENESIS_HASH, type JournalRow } from '../src/persistence/journal.ts';
import { MIGRATIONS_DIR, migrate } from '../src/persistence/migrate.ts';
import { insertAudit, type AuditRecord } from '../src/persistence/sql/audit.ts';
import { committedStatus, FAST_SETTINGS, seedErrata, startTestSystem } from './helpers/actors.ts';
import { adminUrl, createTestDatabase, urlFor } from './helpers/db.ts';
import { loadCorpus, resetSequences, restoreEntryRows } from './golden/corpus.ts';

const run = promisify(execFile);
const TRIALS = 1000;

async function admin(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** mulberry32: a seeded generator, so a failing run can be replayed (AUDIT_TAMPER_SEED). */
function rng(seed: number) {
  const next = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  return { next, int, pick };
}

// ------------------------------------------------------------------------------ the trail
const ACTORS = ['alice', 'bob', 'token:ci-bot', 'proxy:Jürgen Müller', 'cli:root', 'user "quoted"'];
const ACTIONS = [
  'queue.create',
  'approval.approve',
  'approval.reject',
  'auth.denied',
  'token.create',
  'token.revoke',
  'config.update',
  'rollback.start',
];
const DETAILS: unknown[] = [
  undefined,
  {},
  { reason: 'looks good' },
  { nested: { a: [1, 2.5, 'x', null], b: false } },
  { quote: 'he said "hi"\n\ttab\\slash' },
  { emoji: '🚀', cjk: '日本語', rtl: 'שלום' },
  { big: 12345678901234, neg: -0.001 },
  ['an', 'array'],
  { 'key with space': 'v', '': 'empty key' },
];

function auditRecord(r: ReturnType<typeof rng>, i: number): AuditRecord {
  const method = r.pick(['POST', 'PUT', 'DELETE', 'GET', null] as const);
  return {
    actor: r.pick(ACTORS),
    tokenId: r.next() < 0.2 ? null : r.int(1, 40),
    action: r.pick(ACTIONS),
    method: method as string,
    path:
      method === null
        ? (null as unknown as string)
        : `/api/v1/queue/${r.int(1, 9)}/${r.pick(['approve', 'reject', 'retry', ''])}`,
    targetType: r.next() < 0.3 ? null : 'queue_entry',
    targetId: r.next() < 0.3 ? null : String(r.int(1, 9)),
    outcome: r.pick(['allowed', 'denied', 'failed', 'succeeded'] as const),
    statusCode: r.pick([200, 201, 403, 409, 503]),
    ip: r.pick(['10.0.0.1', '2001:db8::17', '192.168.100.200', null]),
    userAgent: r.next() < 0.1 ? 'Ünïcødé-agent/1.0 '.repeat(40) : r.pick(['curl/8.5', 'vitest', null]),
    requestId: r.next() < 0.2 ? null : `req-${i}`,
    details: r.pick(DETAILS),
  };
}

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let copyName = '';
let copy: Db | undefined;
const extraDbs: string[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
  const r = rng(7);
  const { sys } = await startTestSystem(t.db);
  const op = { actor: 'alice', ip: '10.0.0.1', userAgent: 'vitest', requestId: 'req-e' };
  const errata = ['FAKE-3001', 'FAKE-3002-VALFAIL', 'FAKE-3003-REBOOT', 'FAKE-3004', 'FAKE-3005'];
  await seedErrata(t.db, errata);
  const ids: number[] = [];
  for (const e of errata) {
    ids.push(
      await sys.host.create(
        {
          errataId: e,
          errataVersion: '1',
          targetOs: 'ubuntu',
          priority: 0,
          successScore: 80,
          notes: null,
          settings: FAST_SETTINGS,
        },
        op,
      ),
    );
  }
  for (const id of ids.slice(0, 4)) await sys.host.send(id, { type: 'START_TEST', by: 'alice' }, op);
  await recordAuditAnchor(t.db, { recordedBy: 'test' }); // heads mid-flight
  for (let i = 0; i < 100; i++) await insertAudit(t.db, auditRecord(r, i));
  await committedStatus(sys, ids[0]!, (s) => s === 'pending_approval');
  await sys.host.send(ids[0]!, { type: 'APPROVE', by: 'bob', reason: 'ok' }, { actor: 'bob' });
  await committedStatus(sys, ids[1]!, (s) => s === 'rolled_back');
  await committedStatus(sys, ids[2]!, (s) => s === 'pending_approval');
  await sys.host.send(ids[2]!, { type: 'REJECT', by: 'bob', reason: 'not now' }, { actor: 'bob' });
  await committedStatus(sys, ids[3]!, (s) => s === 'pending_approval');
  await sys.host.send(ids[4]!, { type: 'REMOVE', by: 'alice' }, op);
  await recordAuditAnchor(t.db, { recordedBy: 'test' });
  // Concurrent writers: the trigger serialises them into one contiguous chain.
  await Promise.all(Array.from({ length: 150 }, (_, i) => insertAudit(t.db, auditRecord(r, 100 + i))));
  await committedStatus(sys, ids[0]!, (s) => s === 'completed');
  await recordAuditAnchor(t.db, { recordedBy: 'test' });
  for (let i = 0; i < 100; i++) await insertAudit(t.db, auditRecord(r, 250 + i));
  await sys.stop();
  await recordAuditAnchor(t.db, { recordedBy: 'test' }); // at shutdown: the head of everything
  await t.db.end();
  copyName = `${t.name}_copy`;
  await admin(`CREATE DATABASE ${copyName} TEMPLATE ${t.name}`);
  copy = await createDb({ url: urlFor(copyName), poolMax: 4 });
}, 120_000);

afterAll(async () => {
  await copy?.end();
  for (const name of [t.name, copyName, ...extraDbs])
    if (name) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

// ------------------------------------------------------------------------------ tampers
const JOURNAL_SELECT = JOURNAL_COLUMNS;
const journalRow = storedJournalRow;

interface Snapshot {
  audit: { seq: number; id: number; hash: string; prev_hash: string; outcome: string; details: unknown }[];
  journal: Map<number, JournalRow[]>;
}

/** Where the first bad row must be: one of these (table, entry, seqs). */
interface Expect {
  table: 'audit_log' | 'patch_transitions';
  queueId?: number;
  seqs: number[];
}
interface Tamper {
  label: string;
  expect: Expect[];
  apply: (tx: DatabaseTransactionConnection) => Promise<void>;
}

const AUDIT_TEXT = [
  'actor',
  'action',
  'method',
  'path',
  'target_type',
  'target_id',
  'user_agent',
  'request_id',
] as const;
const AUDIT_NULLABLE = new Set([
  'method',
  'path',
  'target_type',
  'target_id',
  'user_agent',
  'request_id',
  'ip_address',
  'token_id',
  'status_code',
  'details',
]);
const AUDIT_CONTENT = [
  'at',
  'actor',
  'token_id',
  'action',
  'method',
  'path',
  'target_type',
  'target_id',
  'outcome',
  'status_code',
  'ip_address',
  'user_agent',
  'request_id',
  'details',
];
const JOURNAL_CONTENT = [
  'event_type',
  'payload',
  'from_state',
  'to_state',
  'from_value',
  'to_value',
  'actor',
  'ip_address',
  'user_agent',
  'request_id',
  'revision',
  'owner_epoch',
  'at',
  'hash_version',
];

const flipHex = (h: string, pos: number) => `${h.slice(0, pos)}${h[pos] === '0' ? '1' : '0'}${h.slice(pos + 1)}`;
const ident = (c: string) => sql.identifier([c]);
const setList = (cols: readonly string[], from: string) =>
  sql.join(
    cols.map((c) => sql.fragment`${ident(c)} = ${sql.identifier([from, c])}`),
    sql.fragment`, `,
  );

/** Re-hash one journal row as an attacker who knows the scheme would. */
async function rehashJournalRow(tx: DatabaseTransactionConnection, queueId: number, seq: number): Promise<void> {
  const row = (await tx.one(
    sql.type(journalRow)`SELECT ${JOURNAL_SELECT} FROM patch_transitions WHERE queue_id = ${queueId} AND seq = ${seq}`,
  )) as JournalRow;
  const version = row.hash_version === 1 || row.hash_version === 2 ? row.hash_version : 2;
  await tx.query(
    sql.unsafe`UPDATE patch_transitions SET hash = ${chainHash(row.prev_hash, { ...row, hash_version: version })} WHERE queue_id = ${queueId} AND seq = ${seq}`,
  );
}

function auditTamper(r: ReturnType<typeof rng>, snap: Snapshot): Tamper {
  const n = snap.audit.length;
  const kind = r.pick(['update', 'delete', 'insert', 'reorder', 'truncate'] as const);
  const at = (seq: number) => snap.audit[seq - 1]!;
  if (kind === 'update') {
    const k = r.int(1, n);
    const row = at(k);
    const column = r.pick([...AUDIT_CONTENT, 'prev_hash', 'hash', 'id', 'seq']);
    const rehash = r.next() < 0.5 && !['hash', 'seq'].includes(column);
    let value = sql.fragment`NULL`;
    const movedSeq = column === 'seq' ? n + 1000 + k : k;
    if (column === 'at') value = sql.fragment`at + ${r.int(1, 3_600_000_000)} * interval '1 microsecond'`;
    else if ((AUDIT_TEXT as readonly string[]).includes(column) || column === 'ip_address') {
      const forged =
        column === 'ip_address'
          ? sql.fragment`'10.66.6.6'`
          : sql.fragment`${ident(column)} || ${r.pick(['x', ' ', 'é', '\u200b'])}`;
      value =
        AUDIT_NULLABLE.has(column) && r.next() < 0.3
          ? sql.fragment`CASE WHEN ${ident(column)} IS NULL THEN 'forged' ELSE NULL END`
          : sql.fragment`CASE WHEN ${ident(column)} IS NULL THEN 'forged' ELSE ${forged} END`;
    } else if (column === 'outcome')
      value = sql.fragment`${r.pick(['allowed', 'denied', 'failed', 'succeeded'].filter((o) => o !== row.outcome))}`;
    else if (column === 'token_id' || column === 'status_code')
      value = sql.fragment`coalesce(${ident(column)}, 0) + ${r.int(1, 5)}`;
    else if (column === 'details') {
      value =
        r.next() < 0.5 || row.details === null
          ? sql.fragment`CASE WHEN details IS NULL THEN '{}'::jsonb ELSE NULL END`
          : sql.fragment`CASE WHEN jsonb_typeof(details) = 'object' THEN details || '{"forged": true}'::jsonb ELSE '["forged"]'::jsonb END`;
    } else if (column === 'prev_hash' || column === 'hash')
      value = sql.fragment`${flipHex(column === 'hash' ? row.hash : row.prev_hash, r.int(0, 63))}`;
    else if (column === 'id') value = sql.fragment`id + 100000`;
    else if (column === 'seq') value = sql.fragment`${movedSeq}`;
    return {
      label: `audit update ${column}${rehash ? ' (re-hashed)' : ''} seq ${k}`,
      expect: [{ table: 'audit_log', seqs: [k, k + 1, movedSeq] }],
      apply: async (tx) => {
        await tx.query(sql.unsafe`UPDATE audit_log SET ${ident(column)} = ${value} WHERE seq = ${k}`);
        if (rehash)
          await tx.query(
            sql.unsafe`UPDATE audit_log a SET hash = spm_chain_hash(a.prev_hash, spm_audit_canonical(a)) WHERE seq = ${k}`,
          );
      },
    };
  }
  if (kind === 'delete') {
    const k = r.int(1, n);
    return {
      label: `audit delete seq ${k}`,
      expect: [{ table: 'audit_log', seqs: [k, k + 1] }],
      apply: async (tx) => void (await tx.query(sql.unsafe`DELETE FROM audit_log WHERE seq = ${k}`)),
    };
  }
  if (kind === 'insert') {
    const k = r.int(1, n);
    const prev = k === 1 ? GENESIS_HASH : at(k - 1).hash;
    const template = at(r.int(1, n)).seq;
    return {
      label: `audit insert forged row at seq ${k}`,
      expect: [{ table: 'audit_log', seqs: [k, k + 1] }],
      apply: async (tx) => {
        await tx.query(sql.unsafe`UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= ${k}`);
        await tx.query(sql.unsafe`UPDATE audit_log SET seq = seq - 999999 WHERE seq >= ${1000000 + k}`);
        // A plausible row (another row's content, a time between its neighbours), chained to its predecessor.
        await tx.query(sql.unsafe`
          INSERT INTO audit_log (id, at, actor, token_id, action, method, path, target_type, target_id, outcome, status_code, ip_address, user_agent, request_id, details, seq, prev_hash, hash)
          SELECT nextval('audit_log_id_seq'), coalesce((SELECT at FROM audit_log WHERE seq = ${k - 1}), now()) + interval '1 microsecond',
                 'forger', token_id, 'approval.approve', 'POST', path, target_type, target_id, 'succeeded', 200, ip_address, user_agent, request_id, details,
                 ${k}, ${prev}, ${GENESIS_HASH}
          FROM audit_log WHERE seq = ${template >= k ? template + 1 : template}`);
        await tx.query(
          sql.unsafe`UPDATE audit_log a SET hash = spm_chain_hash(a.prev_hash, spm_audit_canonical(a)) WHERE seq = ${k}`,
        );
      },
    };
  }
  if (kind === 'reorder') {
    const i = r.int(1, n - 1);
    const j = r.int(i + 1, n);
    if (r.next() < 0.5) {
      return {
        label: `audit reorder: swap seq ${i} and ${j}`,
        expect: [{ table: 'audit_log', seqs: [i] }],
        apply: async (tx) => {
          await tx.query(sql.unsafe`UPDATE audit_log SET seq = 3000000 WHERE seq = ${i}`);
          await tx.query(sql.unsafe`UPDATE audit_log SET seq = ${i} WHERE seq = ${j}`);
          await tx.query(sql.unsafe`UPDATE audit_log SET seq = ${j} WHERE seq = 3000000`);
        },
      };
    }
    return {
      label: `audit reorder: swap the contents of seq ${i} and ${j}`,
      expect: [{ table: 'audit_log', seqs: [i] }],
      apply: async (tx) =>
        void (await tx.query(sql.unsafe`
        UPDATE audit_log a SET ${setList(AUDIT_CONTENT, 'b')} FROM audit_log b
        WHERE (a.seq = ${i} AND b.seq = ${j}) OR (a.seq = ${j} AND b.seq = ${i})`)),
    };
  }
  const k = r.int(1, Math.min(30, n - 1));
  return {
    label: `audit truncate the newest ${k} rows`,
    expect: [{ table: 'audit_log', seqs: [n - k + 1] }],
    apply: async (tx) => void (await tx.query(sql.unsafe`DELETE FROM audit_log WHERE seq > ${n - k}`)),
  };
}

function journalTamper(r: ReturnType<typeof rng>, snap: Snapshot): Tamper {
  const entries = [...snap.journal.keys()];
  const q = r.pick(entries);
  const rows = snap.journal.get(q)!;
  const m = rows.length;
  const kind = r.pick(['update', 'delete', 'insert', 'reorder', 'truncate'] as const);
  const where = (seq: number) => sql.fragment`queue_id = ${q} AND seq = ${seq}`;
  if (kind === 'update') {
    const s = r.int(1, m);
    const row = rows[s - 1]!;
    const column = r.pick([...JOURNAL_CONTENT, 'prev_hash', 'hash', 'seq', 'queue_id']);
    const rehash = r.next() < 0.5 && !['hash', 'seq', 'queue_id'].includes(column);
    const expect: Expect[] = [{ table: 'patch_transitions', queueId: q, seqs: [s, s + 1] }];
    let set = sql.fragment``;
    if (['event_type', 'to_state', 'actor'].includes(column))
      set = sql.fragment`${ident(column)} = ${ident(column)} || ${r.pick(['x', '.', 'é'])}`;
    else if (['from_state', 'ip_address', 'user_agent', 'request_id'].includes(column)) {
      set = sql.fragment`${ident(column)} = CASE WHEN ${ident(column)} IS NULL THEN 'forged' ELSE ${r.next() < 0.5 ? sql.fragment`NULL` : sql.fragment`${ident(column)} || 'x'`} END`;
    } else if (column === 'payload') set = sql.fragment`payload = payload || '{"forged": true}'::jsonb`;
    else if (column === 'from_value' || column === 'to_value') set = sql.fragment`${ident(column)} = '"forged"'::jsonb`;
    else if (column === 'revision' || column === 'owner_epoch')
      set = sql.fragment`${ident(column)} = ${ident(column)} + ${r.int(1, 3)}`;
    else if (column === 'at') set = sql.fragment`at = at + ${r.int(1, 3_600_000_000)} * interval '1 microsecond'`;
    else if (column === 'hash_version') set = sql.fragment`hash_version = ${row.hash_version === 2 ? 1 : 2}`;
    else if (column === 'prev_hash' || column === 'hash')
      set = sql.fragment`${ident(column)} = ${flipHex(column === 'hash' ? row.hash : row.prev_hash, r.int(0, 63))}`;
    else if (column === 'seq') {
      set = sql.fragment`seq = ${s + 1000}`;
      expect[0]!.seqs.push(s + 1000);
    } else if (column === 'queue_id') {
      const other = r.pick(entries.filter((e) => e !== q));
      set = sql.fragment`queue_id = ${other}, seq = ${s + 1000}`;
      expect.push({ table: 'patch_transitions', queueId: other, seqs: [s + 1000] });
    }
    return {
      label: `journal update ${column}${rehash ? ' (re-hashed)' : ''} entry ${q} seq ${s}`,
      expect,
      apply: async (tx) => {
        await tx.query(sql.unsafe`UPDATE patch_transitions SET ${set} WHERE ${where(s)}`);
        if (rehash) await rehashJournalRow(tx, q, s);
      },
    };
  }
  if (kind === 'delete') {
    const s = r.int(1, m);
    return {
      label: `journal delete entry ${q} seq ${s}`,
      expect: [{ table: 'patch_transitions', queueId: q, seqs: [s, s + 1] }],
      apply: async (tx) => void (await tx.query(sql.unsafe`DELETE FROM patch_transitions WHERE ${where(s)}`)),
    };
  }
  if (kind === 'insert') {
    const s = r.int(1, m);
    const template = rows[r.int(0, m - 1)]!;
    const prev = s === 1 ? GENESIS_HASH : rows[s - 2]!.hash;
    const forged: JournalRow = {
      ...template,
      seq: s,
      prev_hash: prev,
      actor: 'forger',
      event_type: 'APPROVE',
      to_state: 'approved',
      revision: s,
      at: (rows[s - 2]?.at ?? template.at) + 1,
      hash: '',
      hash_version: 2,
    };
    forged.hash = chainHash(prev, forged);
    return {
      label: `journal insert forged row entry ${q} at seq ${s}`,
      expect: [{ table: 'patch_transitions', queueId: q, seqs: [s, s + 1] }],
      apply: async (tx) => {
        await tx.query(
          sql.unsafe`UPDATE patch_transitions SET seq = seq + 1000000 WHERE queue_id = ${q} AND seq >= ${s}`,
        );
        await tx.query(
          sql.unsafe`UPDATE patch_transitions SET seq = seq - 999999 WHERE queue_id = ${q} AND seq >= ${1000000 + s}`,
        );
        await tx.query(sql.unsafe`
          INSERT INTO patch_transitions (queue_id, seq, event_type, payload, from_state, to_state, from_value, to_value, actor, ip_address, user_agent,
                                         request_id, revision, owner_epoch, at, prev_hash, hash, hash_version)
          VALUES (${q}, ${s}, ${forged.event_type}, ${sql.jsonb(forged.payload as never)}, ${forged.from_state}, ${forged.to_state},
                  ${sql.jsonb(forged.from_value as never)}, ${sql.jsonb(forged.to_value as never)}, ${forged.actor}, ${forged.ip_address}, ${forged.user_agent},
                  ${forged.request_id}, ${forged.revision}, ${forged.owner_epoch}, to_timestamp(${forged.at / 1000}), ${forged.prev_hash}, '', 2)`);
        await rehashJournalRow(tx, q, s); // to_timestamp may round: hash what was stored
      },
    };
  }
  if (kind === 'reorder') {
    if (m < 2) return journalTamper(r, snap);
    const i = r.int(1, m - 1);
    const j = r.int(i + 1, m);
    if (r.next() < 0.5) {
      return {
        label: `journal reorder: swap entry ${q} seq ${i} and ${j}`,
        expect: [{ table: 'patch_transitions', queueId: q, seqs: [i] }],
        apply: async (tx) => {
          await tx.query(sql.unsafe`UPDATE patch_transitions SET seq = 3000000 WHERE ${where(i)}`);
          await tx.query(sql.unsafe`UPDATE patch_transitions SET seq = ${i} WHERE ${where(j)}`);
          await tx.query(sql.unsafe`UPDATE patch_transitions SET seq = ${j} WHERE ${where(3000000)}`);
        },
      };
    }
    return {
      label: `journal reorder: swap the contents of entry ${q} seq ${i} and ${j}`,
      expect: [{ table: 'patch_transitions', queueId: q, seqs: [i] }],
      apply: async (tx) =>
        void (await tx.query(sql.unsafe`
        UPDATE patch_transitions a SET ${setList(JOURNAL_CONTENT, 'b')} FROM patch_transitions b
        WHERE a.queue_id = ${q} AND b.queue_id = ${q} AND ((a.seq = ${i} AND b.seq = ${j}) OR (a.seq = ${j} AND b.seq = ${i}))`)),
    };
  }
  if (r.next() < 0.5) {
    const k = r.int(1, m);
    return {
      label: `journal truncate the newest ${k} rows of entry ${q}`,
      expect: [{ table: 'patch_transitions', queueId: q, seqs: [m - k + 1] }],
      apply: async (tx) =>
        void (await tx.query(sql.unsafe`DELETE FROM patch_transitions WHERE queue_id = ${q} AND seq > ${m - k}`)),
    };
  }
  // The newest k rows of the whole journal, whichever entries they belong to.
  const k = r.int(1, 20);
  const all = [...snap.journal.values()]
    .flat()
    .sort((a, b) => b.at - a.at || b.queue_id - a.queue_id || b.seq - a.seq)
    .slice(0, k);
  const firstOf = new Map<number, number>();
  for (const x of all) firstOf.set(x.queue_id, Math.min(firstOf.get(x.queue_id) ?? Infinity, x.seq));
  const expect = [...firstOf.entries()]
    .sort(([a], [b]) => a - b)
    .slice(0, 1)
    .map(([queueId, s]) => ({ table: 'patch_transitions' as const, queueId, seqs: [s, s + 1] }));
  return {
    label: `journal truncate the newest ${k} rows (entries ${[...firstOf.keys()].join(', ')})`,
    expect,
    apply: async (tx) =>
      void (await tx.query(sql.unsafe`
      DELETE FROM patch_transitions WHERE (queue_id, seq) IN (SELECT queue_id, seq FROM patch_transitions ORDER BY at DESC, queue_id DESC, seq DESC LIMIT ${k})`)),
  };
}

class Rollback extends Error {}

/**
 * Apply a tamper as an attacker with superuser access would (triggers off), verify, roll back.
 * `triggersOff`: the connection already runs with session_replication_role = replica.
 */
async function tamperAndVerify(
  db: Pick<Db, 'transaction'>,
  tamper: Tamper,
  triggersOff = false,
): Promise<AuditProblem | null> {
  let found: AuditProblem | null = null;
  try {
    await db.transaction(async (tx) => {
      if (!triggersOff) await tx.query(sql.unsafe`SET LOCAL session_replication_role = replica`);
      await tamper.apply(tx);
      found = (await verifyAudit(tx)).firstBad;
      throw new Rollback();
    });
  } catch (raw) {
    if (!(raw instanceof Rollback)) throw raw;
  }
  return found;
}

async function snapshot(db: Db): Promise<Snapshot> {
  const audit = await db.any(sql.type(
    z.object({
      seq: z.number(),
      id: z.number(),
      hash: z.string(),
      prev_hash: z.string(),
      outcome: z.string(),
      details: z.unknown(),
    }),
  )`
    SELECT seq, id, hash, prev_hash, outcome, details FROM audit_log ORDER BY seq`);
  const journal = new Map<number, JournalRow[]>();
  for (const row of await db.any(
    sql.type(journalRow)`SELECT ${JOURNAL_SELECT} FROM patch_transitions ORDER BY queue_id, seq`,
  )) {
    journal.set(row.queue_id, [...(journal.get(row.queue_id) ?? []), row as JournalRow]);
  }
  return { audit: [...audit], journal };
}

function cli(url: string, args: string[]) {
  return run(process.execPath, ['src/main.ts', 'audit', ...args], {
    env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'warn' },
  });
}

describe('audit trail integrity (T14)', () => {
  it('the trail as written verifies intact, and audit verify says so', async () => {
    const report = await verifyAudit(copy!);
    expect(report.problems.map(describeProblem)).toEqual([]);
    expect(report.auditRows).toBe(350);
    expect(report.anchors).toBe(4);
    expect(report.entries).toBe(5);
    const { stdout } = await cli(urlFor(copyName), ['verify']);
    expect(stdout.trim()).toBe(
      `audit verify: 350 audit rows, ${report.journalRows} journal rows in 5 entries, 4 anchors: intact`,
    );
  });

  it('refuses UPDATE, DELETE and TRUNCATE on the audit tables and TRUNCATE on the journal', async () => {
    for (const stmt of [
      sql.unsafe`UPDATE audit_log SET actor = 'mallory' WHERE seq = 1`,
      sql.unsafe`DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)`,
      sql.unsafe`TRUNCATE audit_log`,
      sql.unsafe`TRUNCATE patch_transitions`,
      sql.unsafe`DELETE FROM patch_transitions WHERE seq = 1`,
      sql.unsafe`UPDATE audit_anchors SET audit_seq = 1`,
      sql.unsafe`DELETE FROM audit_anchors`,
      sql.unsafe`TRUNCATE audit_anchors CASCADE`,
      sql.unsafe`DELETE FROM audit_anchor_heads`,
      sql.unsafe`TRUNCATE audit_anchor_heads`,
    ]) {
      await expect(copy!.query(stmt)).rejects.toThrow(/append-only/);
    }
  });

  it(`${TRIALS} random tampers of audit_log and patch_transitions: every one detected at the tampered row`, async () => {
    const seed = Number(process.env.AUDIT_TAMPER_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const r = rng(seed);
    const snap = await snapshot(copy!);
    const started = Date.now();
    let detected = 0;
    const misses: string[] = [];
    const misplaced: string[] = [];
    const kinds = new Map<string, number>();
    // One connection with the triggers off for the whole run (the attacker's session).
    await copy!.connect(async (conn) => {
      await conn.query(sql.unsafe`SET session_replication_role = replica`);
      for (let i = 0; i < TRIALS; i++) {
        const tamper = r.next() < 0.5 ? auditTamper(r, snap) : journalTamper(r, snap);
        const kind = tamper.label.split(' ').slice(0, 2).join('_').replace(/:$/, '');
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        const bad = await tamperAndVerify(conn, tamper, true);
        if (bad === null) {
          misses.push(tamper.label);
          continue;
        }
        detected++;
        const where = tamper.expect.some(
          (e) =>
            e.table === bad.table &&
            (e.queueId === undefined || e.queueId === bad.queueId) &&
            bad.seq !== undefined &&
            e.seqs.includes(bad.seq),
        );
        if (!where) misplaced.push(`${tamper.label} → ${describeProblem(bad)}`);
      }
      await conn.query(sql.unsafe`RESET session_replication_role`);
    });
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(`audit-tamper: seed=${seed} ${[...kinds].map(([k, n]) => `${k}=${n}`).join(' ')}\n`);
    process.stdout.write(
      `audit-tamper: tampers=${TRIALS} detected=${detected} at_tampered_row=${detected - misplaced.length} seconds=${seconds.toFixed(1)}\n`,
    );
    expect(misses).toEqual([]);
    expect(misplaced).toEqual([]);
    expect(detected).toBe(TRIALS);
  }, 300_000);

  it('tampers with the anchors themselves are detected', async () => {
    // The newest anchor that recorded journal heads, and the first entry it recorded.
    const NEWEST_HEAD = sql.fragment`(SELECT anchor_seq, min(queue_id) FROM audit_anchor_heads GROUP BY anchor_seq ORDER BY anchor_seq DESC LIMIT 1)`;
    const cases: [string, ReturnType<typeof sql.unsafe>[], RegExp][] = [
      [
        'delete an anchor in the middle',
        [sql.unsafe`DELETE FROM audit_anchors WHERE seq = 2`],
        /^audit_anchors seq 3: expected seq 2; prev_hash/,
      ],
      [
        'change an anchor',
        [sql.unsafe`UPDATE audit_anchors SET audit_seq = audit_seq - 1 WHERE seq = 3`],
        /^audit_log seq \d+ \(id \d+\): hash .* differs from anchor 3's|^audit_anchors seq 3: hash does not match/,
      ],
      [
        'change an anchored journal head',
        [
          sql.unsafe`UPDATE audit_anchor_heads SET hash = repeat('a', 64) WHERE (anchor_seq, queue_id) = ${NEWEST_HEAD}`,
        ],
        /^patch_transitions entry \d+ seq \d+: hash .* differs from anchor \d's/,
      ],
      [
        'delete the newest anchored head of an entry',
        [sql.unsafe`DELETE FROM audit_anchor_heads WHERE (anchor_seq, queue_id) = ${NEWEST_HEAD}`],
        /^audit_anchors seq \d: recorded \d+ journal heads, audit_anchor_heads holds \d+/,
      ],
    ];
    for (const [label, stmts, expected] of cases) {
      const bad = await tamperAndVerify(copy!, {
        label,
        expect: [],
        apply: async (tx) => {
          for (const s of stmts) await tx.query(s);
        },
      });
      expect(bad ? describeProblem(bad) : `${label}: not detected`, label).toMatch(expected);
    }
  });

  it('audit verify exits 1 naming the first bad row of a committed tamper', async () => {
    await copy!.transaction(async (tx) => {
      await tx.query(sql.unsafe`SET LOCAL session_replication_role = replica`);
      await tx.query(sql.unsafe`UPDATE audit_log SET actor = 'mallory' WHERE seq = 42`);
    });
    const err = await cli(urlFor(copyName), ['verify']).then(
      () => null,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stdout).toMatch(/^audit verify: audit_log seq 42 \(id \d+\): hash does not match the row$/m);
    expect(err?.stderr).toMatch(
      /TAMPERED, 1 problem\(s\); first bad row audit_log seq 42 \(id \d+\): hash does not match the row/,
    );
    const report = await verifyAudit(copy!);
    expect(report.firstBad && problemRow(report.firstBad)).toMatch(/^audit_log seq 42/);
  });

  it('migration 0005 chains the audit rows and keeps the version-1 journal rows of an older database verifiable', async () => {
    const old = await createTestDatabase({ migrated: false });
    extraDbs.push(old.name);
    const dir = mkdtempSync(path.join(tmpdir(), 'spm-mig-'));
    try {
      cpSync(MIGRATIONS_DIR, dir, { recursive: true });
      for (const f of readdirSync(dir)) if (Number(f.slice(0, 4)) >= 5) rmSync(path.join(dir, f)); // the schema as of 0004
      await migrate(old.url, { dir });
      // Rows as a 0004 daemon wrote them: audit rows without a chain, journal rows with version-1 hashes.
      const corpus = loadCorpus(new URL('./golden/v1.json', import.meta.url));
      const onePerEntry = [...new Map(corpus.entries.map((e) => [Number(e.rows.patch_test_queue[0]!.id), e])).values()];
      await seedErrata(old.db, [...new Set(onePerEntry.map((e) => String(e.rows.patch_test_queue[0]!.errata_id)))]);
      for (const e of onePerEntry) await restoreEntryRows(old.db, e.rows);
      await resetSequences(old.db);
      const r = rng(11);
      for (let i = 0; i < 30; i++) await insertAudit(old.db, auditRecord(r, i));
      await migrate(old.url);
      const versions = await old.db.anyFirst(
        sql.type(z.object({ v: z.number() }))`SELECT DISTINCT hash_version AS v FROM patch_transitions`,
      );
      expect(versions).toEqual([1]);
      await insertAudit(old.db, auditRecord(r, 30));
      await recordAuditAnchor(old.db, { recordedBy: 'test' });
      const report = await verifyAudit(old.db);
      expect(report.problems.map(describeProblem)).toEqual([]);
      expect(report.auditRows).toBe(31);
      expect(report.entries).toBe(onePerEntry.length);
      const seqs = await old.db.anyFirst(
        sql.type(z.object({ s: z.number() }))`SELECT seq AS s FROM audit_log ORDER BY id`,
      );
      expect(seqs).toEqual(Array.from({ length: 31 }, (_, i) => i + 1));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await old.db.end();
    }
  });
});
