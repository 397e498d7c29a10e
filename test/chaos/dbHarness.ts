/**
 * Database chaos harness (`npm run chaos:db`, issue 11): complete workflows driven through the real
 * daemon (a child process, `spawnDaemon`) whose every PostgreSQL connection goes through
 * `DbProxy`, which resets, stalls and blackholes connections and drops COMMIT acknowledgements at
 * random (seeded). The daemon is never killed; the database is what fails. The fake world lives
 * in this process and counts every effect; the verdict reads the database directly (not through
 * the proxy).
 *
 * - **duplicates**: fake-world executions of a mutating effect key beyond the first;
 * - **lost**: an acknowledged operator event (2xx, or an `ok` batch item) whose transition is not in
 *   the entry's journal under its request id, a broken or short journal chain, or an approval
 *   without exactly one approval row;
 * - **unfinished**: entries not final at the end;
 * - **db_failures**: entries that failed or rolled back because of the database: a journal row
 *   whose error (an `xstate.error.*` event's `error.message`, a quarantine reason) names a
 *   connection or database error, a test record whose failure names one, a failed verdict or
 *   final status that the errata's name says cannot happen (see `expectedOutcome`).
 *
 * Besides the goal it reports what an operator would notice: unexpected daemon exits, 500 answers
 * (a database blip is a 503 with a retry, not an internal error), 503 "nothing changed" answers for
 * transitions that are in the journal, blackholed connections the daemon never noticed (closed by
 * the proxy after `blackholeGraceMs`), and the daemon's warnings by message.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import { FakeWorld } from '../../src/lab/fakeWorld.ts';
import { FINAL_STATUSES, PROD_STATUSES } from '../../src/machines/patch.machine.ts';
import { createDb } from '../../src/persistence/db.ts';
import { verifyChain } from '../../src/persistence/journal.ts';
import { loadJournal } from '../../src/persistence/sql/entries.ts';
import { setConfigValue } from '../../src/persistence/sql/config.ts';
import { seedErrata } from '../helpers/actors.ts';
import { adminToken, spawnDaemon, type DaemonProc } from '../helpers/daemon.ts';
import { freePort } from '../helpers/proc.ts';
import { CUT_KINDS, DbProxy, type CutKind } from './dbProxy.ts';
import { CHAOS_THRESHOLDS, errataFor } from './harness.ts';
import { issueToken } from '../helpers/tokens.ts';

export interface ChaosDbOptions {
  /** The database (direct URL); the daemon gets it through the proxy. */
  dbUrl: string;
  workflows: number;
  cuts: number;
  seed: number;
  /** Workflows under way at once (default 40). */
  concurrency?: number;
  timeoutMs?: number;
  /** Stop waiting once nothing has moved for this long after the last cut (default 60 s). */
  stuckMs?: number;
  /** A blackholed connection the daemon has not closed after this is closed by the proxy and reported (default 30 s). */
  blackholeGraceMs?: number;
  weights?: Partial<Record<CutKind, number>>;
  stallMs?: [number, number];
  outageMs?: [number, number];
  log?: (line: string) => void;
}

export interface ChaosDbReport {
  cuts: number;
  byKind: Record<CutKind, number>;
  workflows: number;
  duplicates: number;
  lost: number;
  unfinished: number;
  dbFailures: number;
  unnoticedBlackholes: number;
  daemonExits: number;
  http500: number;
  false503: number;
  seconds: number;
  details: string[];
}

const FINAL: readonly string[] = FINAL_STATUSES;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What the errata's name says must happen with a healthy database: whether its test verdict is
 * `passed`, and the final statuses it may end in (after the harness's operator actions).
 */
export function expectedOutcome(errataId: string): { testPasses: boolean; finals: string[] } {
  if (errataId.endsWith('-VALFAIL')) return { testPasses: false, finals: ['rolled_back'] };
  if (errataId.endsWith('-INCONCL')) return { testPasses: false, finals: ['rolled_back', 'rejected', 'removed'] };
  if (errataId.endsWith('-HALT')) return { testPasses: true, finals: ['rolled_back'] }; // halted wave → force-rollback
  return { testPasses: true, finals: ['completed'] };
}

/** Text of an error that comes from the database or the connection to it (independent of src/transient.ts). */
export const DB_ERROR = new RegExp(
  [
    'Connection terminated',
    'connection (error|timeout|refused|reset|lost)',
    'Client has encountered a connection error',
    'timeout expired',
    'Query read timeout',
    'terminating connection',
    'the database system is',
    'server closed the connection',
    'Client is (pending|destroyed|not acquired)',
    'ECONNRESET',
    'ECONNREFUSED',
    'ECONNABORTED',
    'ETIMEDOUT',
    'EPIPE',
    'socket hang up',
    'BackendTerminated',
    'ConnectionError',
    'slonik',
    'could not be persisted',
    'evicted before its transition',
    'is not hosted here',
    'database',
  ].join('|'),
  'i',
);

interface Acked {
  entryId: number;
  requestId: string;
  what: string;
}

export async function runChaosDb(o: ChaosDbOptions): Promise<ChaosDbReport> {
  const log = o.log ?? (() => undefined);
  const t0 = Date.now();
  const details: string[] = [];
  const world = new FakeWorld({ responseDelayMs: 25, waves: 2 });
  const served = await world.serve();
  const db = await createDb({ url: o.dbUrl, poolMax: 5 });
  await setConfigValue(db, 'test_thresholds', CHAOS_THRESHOLDS, 'chaos-db');
  const names = Array.from({ length: o.workflows }, (_, i) => errataFor(i));
  await seedErrata(db, names);
  const token = await adminToken(db);
  // Separation of duties (issue 12): whoever queued and started an entry may not approve it.
  const approver = await issueToken(db, 'chaos-approver', 'approver');

  const upstream = new URL(o.dbUrl);
  const proxy = await DbProxy.start({
    upstreamHost: upstream.hostname,
    upstreamPort: Number(upstream.port || 5432),
    seed: o.seed,
    ...(o.weights ? { weights: o.weights } : {}),
    ...(o.stallMs ? { stallMs: o.stallMs } : {}),
    ...(o.outageMs ? { outageMs: o.outageMs } : {}),
    log: process.env.CHAOS_DEBUG ? log : undefined,
  });
  const random = proxy.random;
  const port = await freePort();
  // The harness's waits are time-scaled (a step times out in seconds, not minutes): the daemon's
  // database timeouts are scaled with them, so a silent connection is given up (5 s statement
  // timeout + 5 s) well before a step's timeout and within the blackhole grace.
  const daemonOpts = {
    dbUrl: proxy.url(o.dbUrl),
    worldUrl: served.url,
    instanceId: 'chaos-db',
    port,
    env: { DB_STATEMENT_TIMEOUT_SECONDS: '5' },
  };

  // ------------------------------------------------------------------ the daemon, restarted only if it dies
  let daemon: DaemonProc | undefined;
  let daemonExits = 0;
  let finishing = false;
  const outputs: string[] = [];
  let calm = true; // no random cuts while the daemon starts
  async function startDaemon(): Promise<void> {
    calm = true;
    for (let attempt = 1; ; attempt++) {
      try {
        daemon = await spawnDaemon(daemonOpts);
        break;
      } catch (raw) {
        if (attempt >= 5) throw raw;
        details.push(`daemon start failed (attempt ${attempt}): ${String((raw as Error).message).slice(0, 300)}`);
        await sleep(500);
      }
    }
    const d = daemon;
    void d.child.exited.then(async (how) => {
      outputs.push(d.child.stdout(), d.child.stderr());
      if (finishing) return;
      daemonExits++;
      const tail = `${d.child.stderr()}\n${d.child.stdout()}`.trim().split('\n').slice(-5).join(' | ');
      details.push(`daemon exited unexpectedly (code ${how.code}, signal ${how.signal}): ${tail.slice(0, 800)}`);
      log(`chaos-db: daemon exited unexpectedly (code ${how.code}); restarting`);
      daemon = undefined;
      await startDaemon();
    });
    calm = false;
  }
  await startDaemon();

  // ------------------------------------------------------------------ operator calls (retried on 503)
  const http: Record<string, number> = {};
  const errorSamples = new Map<string, string>();
  const acked: Acked[] = [];
  const told503: Acked[] = [];
  let reqSeq = 0;
  async function call(
    method: string,
    path: string,
    body: unknown,
    requestId: string,
  ): Promise<{ status: number; body: any }> {
    const d = daemon;
    if (!d) return { status: 0, body: null };
    try {
      const res = await fetch(`${d.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${path.startsWith('/approvals/') ? approver.token : token}`,
          'x-request-id': requestId,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(120_000),
      });
      const text = await res.text();
      let parsed: any = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = text;
      }
      const code = typeof parsed?.error?.code === 'string' ? `:${parsed.error.code}` : '';
      http[`${res.status}${code}`] = (http[`${res.status}${code}`] ?? 0) + 1;
      if (res.status >= 400 && !errorSamples.has(`${res.status}${code}`))
        errorSamples.set(
          `${res.status}${code}`,
          `${method} ${path}: ${String(parsed?.error?.message ?? text).slice(0, 200)}`,
        );
      for (const it of (path === '/approvals/batch' ? (parsed?.results ?? []) : []) as {
        ok: boolean;
        error?: { code: string; message: string };
      }[]) {
        if (it.ok) continue;
        const k = `item:${it.error?.code}`;
        http[k] = (http[k] ?? 0) + 1;
        if (!errorSamples.has(k)) errorSamples.set(k, `${path} item: ${String(it.error?.message).slice(0, 200)}`);
      }
      return { status: res.status, body: parsed };
    } catch {
      http['0'] = (http['0'] ?? 0) + 1;
      return { status: 0, body: null };
    }
  }
  /** One operator event, retried while the daemon answers 503 (or 500, or not at all). */
  async function operator(
    entryIds: number[],
    what: string,
    method: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: any }> {
    let r = { status: 0, body: null as any };
    for (let attempt = 1; attempt <= 8; attempt++) {
      const requestId = `cdb-${++reqSeq}`;
      r = await call(method, path, body, requestId);
      if (r.status >= 200 && r.status < 300) {
        if (Array.isArray(r.body?.results)) {
          for (const it of r.body.results as { id: number; ok: boolean; error?: { code: string } }[]) {
            if (it.ok) acked.push({ entryId: it.id, requestId, what });
            else if (it.error?.code === 'not_persisted') told503.push({ entryId: it.id, requestId, what });
          }
        } else for (const id of entryIds) acked.push({ entryId: id, requestId, what });
        return r;
      }
      if (r.status === 503 && r.body?.error?.code === 'not_persisted')
        for (const id of entryIds) told503.push({ entryId: id, requestId, what });
      if (r.status !== 503 && r.status !== 500 && r.status !== 0) return r; // 409 etc.: the state moved on; the loop re-reads it
      await sleep(100 * 2 ** Math.min(attempt, 4) * (0.5 + random()));
    }
    return r;
  }

  // Queue everything first: creating entries is setup; the cuts are for the workflows.
  for (let i = 0; i < names.length; i += 250) {
    for (;;) {
      const r = await call('POST', '/queue', { errata_ids: names.slice(i, i + 250) }, `cdb-queue-${i}`);
      if (r.status === 201 || r.status === 409) break;
      await sleep(200);
    }
  }

  // ------------------------------------------------------------------ the cutter
  let progress = 0; // fraction of workflows final
  let cutterDone = false;
  let lastCutAt = Date.now();
  let unnoticed = 0;
  const grace = o.blackholeGraceMs ?? 30_000;
  const cutter = (async () => {
    while (!cutterDone) {
      await sleep(80 + random() * 400);
      // The proxy closes blackholes the daemon never noticed (as a kernel would, much later), and says so.
      for (const l of proxy.hangingBlackholes(grace)) {
        proxy.closeLink(l.id);
        if (!l.waiting) continue; // idle: nothing was waiting on it, nothing to notice
        unnoticed++;
        details.push(
          `blackhole unnoticed by the daemon for ${grace} ms: link ${l.id} (${l.appName || 'pool'}), opened ${Math.round((Date.now() - l.openedAt) / 1000)} s ago, a request unanswered (last statement: ${l.lastQuery || '?'}); closed by the proxy`,
        );
      }
      if (calm || !daemon) continue;
      if (proxy.cuts >= o.cuts) {
        if (proxy.armedAcks > 0 && Date.now() - lastCutAt > 20_000) proxy.disarm();
        continue;
      }
      // Spread the cuts over the run: allowed so far ∝ progress (reaching all of them at ~85 %).
      // …and at least one every 2 s, so that a stuck workload still gets all its cuts.
      const byProgress = Math.min(o.cuts, Math.ceil(o.cuts * Math.min(1, progress * 1.18)) + 3);
      const allowed = Date.now() - lastCutAt > 2000 ? Math.min(o.cuts, proxy.cuts + proxy.armedAcks + 1) : byProgress;
      if (proxy.cuts + proxy.armedAcks >= allowed) continue;
      const exclude: CutKind[] = proxy.armedAcks >= 2 ? ['commit_ack', 'autocommit_ack'] : [];
      const k = proxy.randomCut(exclude);
      if (k) lastCutAt = Date.now();
      if (proxy.cuts > 0 && proxy.cuts % 25 === 0 && k)
        log(`chaos-db: ${proxy.cuts} cuts so far (${JSON.stringify(nonZero(proxy.counts))})`);
    }
  })();

  // ------------------------------------------------------------------ the workload
  const deadline = Date.now() + (o.timeoutMs ?? 1_800_000);
  const stuckMs = o.stuckMs ?? 60_000;
  const rows = () =>
    db.any(sql.type(
      z.object({
        id: z.number(),
        errata_id: z.string(),
        status: z.string(),
        revision: z.number(),
        phase: z.string().nullable(),
      }),
    )`
    SELECT id, errata_id, status, revision, snapshot->'context'->'attention'->>'phase' AS phase FROM patch_test_queue ORDER BY id`);
  let lastSig = '';
  let lastMove = Date.now();
  let stopReason = 'all final';
  for (;;) {
    const all = await rows();
    const open = all.filter((r) => !FINAL.includes(r.status));
    progress = (all.length - open.length) / o.workflows;
    const sig = `${open.length}:${all.reduce((s, r) => s + r.revision, 0)}`;
    if (sig !== lastSig) {
      lastSig = sig;
      lastMove = Date.now();
    }
    if (all.length >= o.workflows && open.length === 0) break;
    if (Date.now() > deadline) {
      stopReason = 'deadline';
      break;
    }
    if (Date.now() - lastMove > stuckMs && Date.now() - lastCutAt > stuckMs) {
      stopReason = `nothing moved for ${stuckMs} ms`;
      break;
    }
    if (!daemon) {
      await sleep(100);
      continue;
    }
    const active = open.filter((r) => r.status !== 'queued').length;
    const queued = open.filter((r) => r.status === 'queued').slice(0, Math.max(0, (o.concurrency ?? 40) - active));
    const pending = open.filter((r) => r.status === 'pending_approval').slice(0, 200);
    const attention = open.filter((x) => x.status === 'needs_attention').slice(0, 100);
    await Promise.all([
      ...queued.map((r) => operator([r.id], 'START_TEST', 'POST', '/tests/start', { queue_id: r.id })),
      pending.length > 0
        ? operator(
            pending.map((r) => r.id),
            'APPROVE',
            'POST',
            '/approvals/batch',
            { items: pending.map((r) => ({ id: r.id, action: 'approve', reason: 'chaos-db' })) },
          )
        : Promise.resolve(),
      ...attention.map((r) =>
        r.phase === 'prod' || r.phase === 'prod_rollback'
          ? operator([r.id], 'FORCE_ROLLBACK', 'POST', `/queue/${r.id}/force-rollback`, {
              reason: 'chaos-db: halted wave',
              rollback_type: 'package',
            })
          : operator([r.id], 'MARK_FAILED', 'POST', `/queue/${r.id}/mark-failed`, {
              reason: 'chaos-db: operator gives up',
            }),
      ),
    ]);
    await sleep(100);
  }
  cutterDone = true;
  await cutter;
  // Connections on which the daemon waits for an answer: which side is silent.
  const now = Date.now();
  const endLinks: string[] = [];
  for (const l of proxy.connections()) {
    if (l.pending > 0 || l.mode !== 'flow') {
      endLinks.push(
        `info: at the end, link ${l.id} (${l.appName || 'pool'}) ${l.mode}: ${l.pending} cycles unanswered, ${l.cycleOut} server messages held, ${l.held} chunks stalled; client last sent ${Math.round((now - l.lastClientAt) / 1000)} s ago (${l.lastQuery}), server ${Math.round((now - l.lastServerAt) / 1000)} s ago`,
      );
    }
  }
  proxy.disarm();
  // Heal the network before stopping the daemon: a shutdown that waits on a cut connection is not a shutdown bug.
  for (const l of proxy.hangingBlackholes(grace)) {
    if (!l.waiting) continue;
    unnoticed++;
    details.push(
      `blackhole unnoticed by the daemon for ${grace} ms at the end: link ${l.id} (${l.appName || 'pool'}), last statement: ${l.lastQuery || '?'}; closed by the proxy`,
    );
  }
  proxy.heal();
  finishing = true;
  const last = daemon;
  if (last) {
    last.child.proc.kill('SIGTERM');
    const how = await Promise.race([last.child.exited, sleep(30_000).then(() => null)]);
    if (how === null) {
      const links = proxy
        .connections()
        .map((l) => `${l.id}(${l.appName || 'pool'}) pending ${l.pending}`)
        .join(', ');
      details.push(`daemon did not stop within 30 s of SIGTERM (killed); its connections then: ${links || 'none'}`);
      last.child.proc.kill('SIGKILL');
      await last.child.exited;
    }
  }
  await proxy.close();
  served.server.close();

  // ------------------------------------------------------------------ verdict
  const dups = world.duplicates();
  for (const d of dups.slice(0, 10)) details.push(`duplicate effect ${d.key} ×${d.count}`);
  const final = await rows();
  const byId = new Map(final.map((r) => [r.id, r]));

  let lost = 0;
  for (const r of final) {
    const journal = await loadJournal(db, r.id);
    const broken = verifyChain(journal);
    const lastRow = journal[journal.length - 1];
    if (broken || !lastRow || lastRow.to_state.split('.')[0] !== r.status) {
      lost++;
      details.push(
        `lost: entry ${r.id}: journal ${broken ? `broken at ${broken.seq} (${broken.problem})` : `ends in ${lastRow?.to_state} but status ${r.status}`}`,
      );
    }
    const reachedProd = journal.some((j) => (PROD_STATUSES as readonly string[]).includes(j.to_state.split('.')[0]!));
    const approvedAck = acked.some((a) => a.entryId === r.id && a.what === 'APPROVE');
    if (reachedProd || approvedAck) {
      const n = await db.oneFirst(
        sql.type(
          z.object({ n: z.number() }),
        )`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${r.id} AND action = 'approved'`,
      );
      if (n !== 1) {
        lost++;
        details.push(`lost: entry ${r.id}: ${n} approval rows (approval acknowledged: ${approvedAck})`);
      }
    }
  }
  const journalled = new Set(
    (
      await db.any(sql.type(z.object({ queue_id: z.number(), request_id: z.string() }))`
      SELECT DISTINCT queue_id, request_id FROM patch_transitions WHERE request_id LIKE 'cdb-%'`)
    ).map((r) => `${r.queue_id}|${r.request_id}`),
  );
  for (const a of acked) {
    if (!journalled.has(`${a.entryId}|${a.requestId}`)) {
      lost++;
      details.push(
        `lost: entry ${a.entryId}: ${a.what} acknowledged (request ${a.requestId}) but no journal row carries it`,
      );
    }
  }
  const false503 = told503.filter((a) => journalled.has(`${a.entryId}|${a.requestId}`));
  for (const a of false503.slice(0, 5))
    details.push(
      `false 503: entry ${a.entryId}: ${a.what} (request ${a.requestId}) was answered 503 "nothing changed" but its transition is in the journal`,
    );

  // db_failures: the database decided an outcome.
  const evidence = new Map<number, string>();
  const note = (id: number, why: string) => {
    if (!evidence.has(id)) evidence.set(id, why);
  };
  const errRows = await db.any(sql.type(
    z.object({ queue_id: z.number(), seq: z.number(), event_type: z.string(), message: z.string().nullable() }),
  )`
    SELECT queue_id, seq, event_type, coalesce(payload->'error'->>'message', payload->>'reason') AS message
    FROM patch_transitions
    WHERE event_type LIKE 'xstate.error%' OR event_type = 'HYDRATE_FAILED'
    ORDER BY queue_id, seq`);
  for (const e of errRows) {
    if (e.message !== null && DB_ERROR.test(e.message))
      note(e.queue_id, `journal seq ${e.seq} ${e.event_type}: ${e.message.slice(0, 200)}`);
  }
  const tests = await db.any(sql.type(
    z.object({
      queue_id: z.number(),
      errata_id: z.string(),
      result: z.string().nullable(),
      failure_reason: z.string().nullable(),
    }),
  )`
    SELECT queue_id, errata_id, result, failure_reason FROM patch_tests ORDER BY id`);
  for (const t of tests) {
    if (t.failure_reason !== null && DB_ERROR.test(t.failure_reason))
      note(t.queue_id, `test record: ${t.result}: ${t.failure_reason.slice(0, 200)}`);
    else if (
      expectedOutcome(t.errata_id).testPasses &&
      t.result !== null &&
      t.result !== 'passed' &&
      t.result !== 'running'
    ) {
      note(
        t.queue_id,
        `test of ${t.errata_id} (should pass) ended ${t.result}: ${t.failure_reason ?? ''}`.slice(0, 300),
      );
    }
  }
  for (const r of final) {
    if (!FINAL.includes(r.status)) continue;
    const exp = expectedOutcome(r.errata_id);
    if (!exp.finals.includes(r.status)) {
      const reason = await db.maybeOneFirst(
        sql.type(
          z.object({ status_reason: z.string().nullable() }),
        )`SELECT status_reason FROM patch_test_queue WHERE id = ${r.id}`,
      );
      note(r.id, `${r.errata_id} ended ${r.status} (expected ${exp.finals.join('/')}): ${reason ?? ''}`.slice(0, 300));
    }
  }
  const logLines = outputs
    .join('\n')
    .split('\n')
    .filter((l) => l.startsWith('{'));
  /** Evidence for one entry: its journal, compact, and what the daemon logged about it. */
  const trail = async (id: number): Promise<string> => {
    const j = await db.any(sql.type(
      z.object({
        seq: z.number(),
        event_type: z.string(),
        to_state: z.string(),
        at: z.number(),
        msg: z.string().nullable(),
      }),
    )`
      SELECT seq, event_type, to_state, extract(epoch FROM at) * 1000 AS at, coalesce(payload->'error'->>'message', payload->>'reason') AS msg
      FROM patch_transitions WHERE queue_id = ${id} ORDER BY seq`);
    const t0j = j[0]?.at ?? 0;
    const journal = j
      .map(
        (r) =>
          `${r.seq}@${((r.at - t0j) / 1000).toFixed(1)}s ${r.event_type}→${r.to_state}${r.msg ? ` (${r.msg.slice(0, 90)})` : ''}`,
      )
      .join('; ');
    const said = logLines
      .filter((l) => l.includes(`"entryId":${id},`) || l.includes(`"key":"${id}:`))
      .map((l) => {
        let x: { time?: string; msg?: string; err?: unknown; why?: string; key?: string } = {};
        try {
          x = JSON.parse(l);
        } catch {
          return l.slice(0, 120);
        }
        return `${x.time?.slice(11, 23)} ${x.msg}${x.key ? ` [${x.key}]` : ''}${x.err ? `: ${String(x.err).slice(0, 90)}` : ''}${x.why ? `: ${x.why.slice(0, 90)}` : ''}`;
      })
      .slice(0, 8)
      .join('; ');
    return `journal: ${journal.slice(0, 2500)}${said ? ` | daemon log: ${said}` : ''}`;
  };
  let shown = 0;
  let trails = 0;
  for (const [id, why] of evidence) {
    if (shown++ >= 15) break;
    details.push(
      `db failure: entry ${id} (${byId.get(id)?.errata_id ?? '?'}): ${why}${shown <= 6 ? `\n      ${await trail(id)}` : ''}`,
    );
  }

  const unfinishedRows = final.filter((r) => !FINAL.includes(r.status));
  for (const r of unfinishedRows.slice(0, 10)) {
    const lastRow = (await loadJournal(db, r.id)).at(-1);
    const own = await db.maybeOne(sql.type(z.object({ owner_id: z.string().nullable(), lease_ok: z.boolean() }))`
      SELECT owner_id, lease_until > now() AS lease_ok FROM patch_test_queue WHERE id = ${r.id}`);
    details.push(
      `unfinished: entry ${r.id} (${r.errata_id}) is ${r.status}; last journal row seq ${lastRow?.seq} ${lastRow?.event_type} → ${lastRow?.to_state}; owner ${own?.owner_id} lease ${own?.lease_ok ? 'live' : 'expired'}${trails++ < 4 ? `\n      ${await trail(r.id)}` : ''}`,
    );
  }
  const unfinished = unfinishedRows.length + Math.max(0, o.workflows - final.length);

  // What the daemon said about it (LOG_LEVEL=warn: warnings and errors), by message.
  const said = new Map<string, { n: number; sample: string }>();
  for (const line of outputs.join('\n').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as { msg?: string; level?: number | string; err?: unknown; entryId?: number };
      if (!j.msg) continue;
      const k = j.msg.replace(/\b\d+(:[\w#]+)+/g, '<key>').replace(/\b(entry|queue entry) \d+/g, '$1 <id>');
      const s = said.get(k) ?? { n: 0, sample: line.slice(0, 300) };
      s.n++;
      said.set(k, s);
    } catch {
      // not a log line
    }
  }
  const logInfo = [...said]
    .sort((a, b) => b[1].n - a[1].n)
    .map(([msg, s]) => `info: daemon log ×${s.n}: ${msg} — e.g. ${s.sample}`);
  const reruns = await db.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM effects WHERE executions > 1`,
  );
  details.push(
    `info: stop: ${stopReason}; http answers ${JSON.stringify(http)}; effect keys the daemon ran more than once: ${reruns}; proxy connections accepted ${proxy.accepted}, dropped during outages ${proxy.refused}`,
  );
  details.push(`info: cuts by kind ${JSON.stringify(proxy.counts)}`);
  for (const [k, v] of errorSamples) details.push(`info: first ${k} answer: ${v}`);
  details.push(...endLinks, ...logInfo);
  await db.end();
  return {
    cuts: proxy.cuts,
    byKind: { ...proxy.counts },
    workflows: o.workflows,
    duplicates: dups.reduce((s, d) => s + d.count - 1, 0),
    lost,
    unfinished,
    dbFailures: evidence.size,
    unnoticedBlackholes: unnoticed,
    daemonExits,
    http500: Object.entries(http)
      .filter(([k]) => k.startsWith('500'))
      .reduce((a, [, v]) => a + v, 0),
    false503: false503.length,
    seconds: Math.round((Date.now() - t0) / 1000),
    details,
  };
}

function nonZero(c: Record<CutKind, number>): Partial<Record<CutKind, number>> {
  return Object.fromEntries(CUT_KINDS.filter((k) => c[k] > 0).map((k) => [k, c[k]]));
}

/** Did the run meet the goal? */
export function goalMet(r: ChaosDbReport): boolean {
  return r.duplicates === 0 && r.lost === 0 && r.unfinished === 0 && r.dbFailures === 0;
}

export function lastLine(r: ChaosDbReport): string {
  return `chaos-db: cuts=${r.cuts} workflows=${r.workflows} duplicates=${r.duplicates} lost=${r.lost} unfinished=${r.unfinished} db_failures=${r.dbFailures}`;
}
