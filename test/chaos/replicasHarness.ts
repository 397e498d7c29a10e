/**
 * Replica chaos harness (`npm run chaos:replicas`, issue 11): several daemons (child processes,
 * `spawnDaemon`, distinct INSTANCE_IDs, a short lease TTL) over ONE PostgreSQL database and ONE
 * fake world served over loopback from this process, which counts every effect whichever replica
 * ran it. The test lanes run inside the daemons (`FAKE_WORLD_LANES=1`, one lane per configured
 * test system, each led by one replica through its advisory lock), as in production. At random
 * moments a replica is killed with SIGKILL (and restarted under the same INSTANCE_ID), frozen with
 * SIGSTOP for 2 × the lease TTL (its leases expire, the others take its entries) and resumed with
 * SIGCONT, or stopped with SIGTERM and restarted. Operator events (approve, reject, snooze,
 * roll the test system back, mark failed, force a production rollback — whatever the entry's state
 * accepts) go round-robin to every live replica (a frozen one too: a load balancer does not know),
 * each logical event under one `Idempotency-Key` and one `X-Request-Id`, retried on 503, 500,
 * timeouts and connection errors — so a retry is never a second decision.
 *
 * Measured at the end:
 * - **duplicates**: fake-world executions of a mutating effect key beyond the first;
 * - **lost**: an acknowledged (2xx) operator event whose transition is not in the entry's journal
 *   under its request id; a broken journal chain or one that does not end in the entry's status;
 *   an entry in production without exactly one approval row;
 * - **unfinished**: entries not final after the drain (faults over, at most `drainMs`);
 * - **stale_rejected**: writes and effects refused by the fence (`fencedRejections`,
 *   `spm_fenced_writes_rejected_total`). Each replica process is scraped before every fault that
 *   hits it and at the end; a killed process's counter dies with it, so every process's log is
 *   counted too: one line per refusal ("effect … fenced before it ran / at its result", and
 *   "persisting a transition failed for good" with a fenced write) — exactly the two places that
 *   increment the counter. Per process the larger of the two is taken (the log is complete unless
 *   a line was still buffered at SIGKILL; the scrape misses what came after it);
 * - **lane_overlaps**: pairs of entries holding one test system at the same time, from two
 *   independent sources: the journal (an entry holds its system from the row that enters an
 *   occupying state — START_TEST names the system — until the first row in a state that does not
 *   hold it; pending_retry and needs_attention are counted as holding, which can only over-report)
 *   and the fake world (per entry and attempt, the span from its first to its last test-phase call
 *   naming the system, a subset of the real holding time). GET /api/v1/lanes of every replica is
 *   sampled too: two replicas leading one lane with an entry each is reported.
 *
 * Also reported (problems, not in the last line): journal rows written under an older owner epoch
 * than an earlier row (a stale replica wrote after a takeover), unexpected daemon exits, an
 * Idempotency-Key refused as reused.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'slonik';
import { z } from 'zod';
import { FakeWorld } from '../../src/lab/fakeWorld.ts';
import { EFFECT_NAMES } from '../../src/machines/effects.ts';
import {
  FINAL_STATUSES,
  PROD_STATUSES,
  TEST_SYSTEM_OCCUPANCY,
  type EffectName,
  type Effects,
} from '../../src/machines/patch.machine.ts';
import { createDb } from '../../src/persistence/db.ts';
import { verifyChain } from '../../src/persistence/journal.ts';
import { setConfigValue } from '../../src/persistence/sql/config.ts';
import { loadJournal } from '../../src/persistence/sql/entries.ts';
import { seedErrata } from '../helpers/actors.ts';
import { adminToken } from '../helpers/daemon.ts';
import { freePort, startChild, waitForHttp, type Child } from '../helpers/proc.ts';
import { prng } from '../../src/random.ts';
import { CHAOS_THRESHOLDS, errataFor } from './harness.ts';
import { issueToken } from '../helpers/tokens.ts';

export interface ReplicasOptions {
  dbUrl: string;
  workflows: number;
  faults: number;
  seed?: number;
  /** Replicas (default 3). */
  replicas?: number;
  /** LEASE_TTL_SECONDS of every replica (default 4); a SIGSTOP lasts twice this. */
  leaseTtlSeconds?: number;
  /** Test systems (ubuntu), one lane each (default 4). */
  testSystems?: number;
  /** Fake-world latency of every effect (ms, default 30): the action is counted when it ends. */
  latencyMs?: number;
  /** After the last fault, wait at most this long for every entry to be final (default 120 s). */
  drainMs?: number;
  /** Give up on the whole run after this long (default 40 min). */
  timeoutMs?: number;
  /** Relative weights of the faults (default kill 4, stop 3, term 3). */
  weights?: Partial<Record<FaultKind, number>>;
  /**
   * Also roll test systems back from the approval gate (ROLLBACK_TEST, `POST /tests/{id}/rollback`)
   * for every 12th errata instead of snoozing it. Off by default: the approval gate then rolls a test
   * system back that a lane may already have given to the next entry (lane_overlaps > 0 with one replica
   * and no faults: a bug of the lanes, not of the replicas).
   */
  rollbackTest?: boolean;
  /** LOG_LEVEL of the daemons (default warn; info adds the lanes' and the roles' lines to the evidence). */
  logLevel?: string;
  /** Extra environment of every daemon. */
  env?: Record<string, string>;
  log?: (line: string) => void;
}

export type FaultKind = 'kill' | 'stop' | 'term';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'stop', 'term'];

export interface ReplicasReport {
  replicas: number;
  faults: number;
  byKind: Record<FaultKind, number>;
  workflows: number;
  duplicates: number;
  lost: number;
  unfinished: number;
  staleRejected: number;
  laneOverlaps: number;
  /** Problems outside the last line: stale-epoch journal rows, lanes API conflicts, unexpected exits, key reuse. */
  otherProblems: number;
  seconds: number;
  details: string[];
}

const FINAL: readonly string[] = FINAL_STATUSES;
/** States that hold the test system outright (the machine's fact). */
const HOLDS: readonly string[] = TEST_SYSTEM_OCCUPANCY.statuses;
/** …and the ones that may (a retry of a test step, a human needed during the test): counted as holding. */
const MAY_HOLD: readonly string[] = [...HOLDS, 'pending_retry', 'needs_attention'];
/** Effects that act on the test system. */
const TEST_EFFECTS: readonly EffectName[] = [
  'takeSnapshot',
  'collectBaseline',
  'applyErrata',
  'awaitAction',
  'checkReboot',
  'scheduleReboot',
  'awaitHost',
  'validate',
  'rollbackTest',
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the approver does with an entry waiting for a decision, by the errata's number. */
export function decisionFor(errataId: string, rollbackTest = false): 'approve' | 'reject' | 'snooze' | 'rollback_test' {
  const i = Number(/^CHAOS-(\d+)/.exec(errataId)?.[1] ?? 0);
  if (i % 12 === 9) return rollbackTest ? 'rollback_test' : 'snooze';
  return i % 12 === 3 ? 'reject' : i % 12 === 4 ? 'snooze' : 'approve';
}

/** The fake world, also recording when each entry's test touched which test system. */
class ObservedWorld extends FakeWorld {
  readonly testSpans = new Map<
    string,
    { entryId: number; attempt: number; system: string; first: number; last: number; calls: number }
  >();
  override async run<N extends EffectName>(name: N, input: Effects[N]['in'], signal?: AbortSignal) {
    const t0 = Date.now();
    try {
      return await super.run(name, input, signal);
    } finally {
      const system = input.testSystem?.name;
      if (system && TEST_EFFECTS.includes(name)) {
        const k = `${input.entryId}:${input.attempt}:${system}`;
        const s = this.testSpans.get(k) ?? {
          entryId: input.entryId,
          attempt: input.attempt,
          system,
          first: t0,
          last: t0,
          calls: 0,
        };
        s.first = Math.min(s.first, t0);
        s.last = Math.max(s.last, Date.now());
        s.calls++;
        this.testSpans.set(k, s);
      }
    }
  }

  /** Every call by effect key (`name|key`): when, which replica process, and what it did. */
  readonly calls = new Map<
    string,
    { at: number; end: number | null; op: 'run' | 'reconcile'; caller: string; result: string }[]
  >();

  /**
   * `FakeWorld.serve()` once per replica: the same world (one count of every effect), but each
   * replica has a port of its own, so every call is known by the process that made it.
   */
  serveFor(caller: () => string): Promise<{ url: string; server: Server }> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const reply = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        const m = /^\/(run|reconcile)\/(\w+)$/.exec(req.url ?? '');
        if (req.method !== 'POST' || m === null || !EFFECT_NAMES.includes(m[2] as EffectName))
          return reply(404, { error: 'not found' });
        const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { key: string };
        const name = m[2] as EffectName;
        const op = m[1] as 'run' | 'reconcile';
        const k = `${name}|${input.key}`;
        const call = { at: Date.now(), end: null as number | null, op, caller: caller(), result: '' };
        this.calls.set(k, [...(this.calls.get(k) ?? []), call]);
        const before = this.executions.get(k) ?? 0;
        const done = op === 'run' ? this.run(name, input as never) : this.reconcile(name, input as never);
        done.then(
          (out) => {
            call.end = Date.now();
            call.result =
              op === 'run'
                ? (this.executions.get(k) ?? 0) > before
                  ? 'executed'
                  : 'no execution'
                : out === null
                  ? 'not found'
                  : 'found';
            reply(200, { ok: true, out });
          },
          (err: Error & { transient?: boolean }) => {
            call.end = Date.now();
            call.result = `error: ${err.message.slice(0, 60)}`;
            reply(200, { ok: false, error: { message: err.message, transient: err.transient === true } });
          },
        );
      });
    });
    return new Promise((resolve) =>
      server.listen(0, '127.0.0.1', () =>
        resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
      ),
    );
  }
}

interface Incarnation {
  slot: number;
  n: number;
  pid: number;
  child: Child;
  exited: boolean;
  expectedExit: boolean;
  /** Last scraped spm_fenced_writes_rejected_total. */
  fencedMetric: number | null;
}
interface Slot {
  idx: number;
  instanceId: string;
  port: number;
  state: 'starting' | 'up' | 'stopped' | 'stopping' | 'down';
  cur: Incarnation | undefined;
  incarnations: Incarnation[];
}

type Action = 'queue' | 'approve' | 'reject' | 'snooze' | 'rollback_test' | 'mark_failed' | 'force_rollback';
const EVENT_OF: Record<Action, string> = {
  queue: 'CREATE',
  approve: 'APPROVE',
  reject: 'REJECT',
  snooze: 'SNOOZE',
  rollback_test: 'ROLLBACK_TEST',
  mark_failed: 'MARK_FAILED',
  force_rollback: 'FORCE_ROLLBACK',
};
interface Attempt {
  slot: number;
  inc: Incarnation;
  status: number;
  code: string | null;
}
interface Logical {
  key: string;
  entryId: number;
  action: Action;
  method: string;
  path: string;
  body: unknown;
  attempts: Attempt[];
  /** acked: 2xx · refused: a 4xx (the state moved on) · happened: not acknowledged but in the journal · abandoned: provably never happened · gave_up. */
  outcome: 'pending' | 'acked' | 'refused' | 'happened' | 'abandoned' | 'gave_up';
  last: string;
}

export async function runChaosReplicas(o: ReplicasOptions): Promise<ReplicasReport> {
  const log = o.log ?? (() => undefined);
  const t0 = Date.now();
  const details: string[] = [];
  const problem = (d: string) => details.push(d);
  const random = prng(o.seed ?? 1);
  const nReplicas = o.replicas ?? 3;
  const ttl = o.leaseTtlSeconds ?? 4;
  const weights = { kill: 4, stop: 3, term: 3, ...(o.weights ?? {}) };

  const world = new ObservedWorld({ responseDelayMs: 25, latencyMs: o.latencyMs ?? 30, waves: 2 });
  const db = await createDb({ url: o.dbUrl, poolMax: 5 });
  await setConfigValue(db, 'test_thresholds', CHAOS_THRESHOLDS, 'chaos-replicas');
  const systems = Array.from({ length: o.testSystems ?? 4 }, (_, i) => `test-ubuntu-${String(i + 1).padStart(2, '0')}`);
  await setConfigValue(
    db,
    'test_systems',
    { ubuntu: systems.map((s) => ({ system_id: null, system_name: s })) },
    'chaos-replicas',
  );
  const names = Array.from({ length: o.workflows }, (_, i) => errataFor(i));
  await seedErrata(db, names);
  const token = await adminToken(db);
  // Approvals come from another person: the one who queued and tested may not approve (separation of duties).
  const approver = await issueToken(db, 'chaos-approver', 'approver', { person: 'chaos-approver' });
  const approverToken = approver.token;
  const runTag = `rep${Date.now().toString(36)}`;

  // ------------------------------------------------------------------ the replicas
  const slots: Slot[] = [];
  const worlds: { url: string; server: Server }[] = [];
  for (let i = 0; i < nReplicas; i++) {
    const s: Slot = {
      idx: i,
      instanceId: `replica-${String.fromCharCode(97 + i)}`,
      port: await freePort(),
      state: 'down',
      cur: undefined,
      incarnations: [],
    };
    slots.push(s);
    worlds.push(await world.serveFor(() => `${s.instanceId}#${s.cur?.n ?? s.incarnations.length + 1}`));
  }
  /** What happened to which replica, when (the evidence next to a problem). */
  const faultLog: { at: number; what: string }[] = [];
  let finishing = false;
  let unexpectedExits = 0;
  const root = (s: Slot) => `http://127.0.0.1:${s.port}`;
  const env = { LEASE_TTL_SECONDS: String(ttl), SCHEDULER_POLL_MS: '100', FAKE_WORLD_LANES: '1', ...(o.env ?? {}) };

  const starting = new Set<Promise<void>>();
  function start(s: Slot): Promise<void> {
    const p = startOnce(s).finally(() => starting.delete(p));
    starting.add(p);
    return p;
  }
  async function startOnce(s: Slot): Promise<void> {
    s.state = 'starting';
    for (let attempt = 1; ; attempt++) {
      // What spawnDaemon does, but a child that does not come up is killed (it would hold the instance lock).
      const child = startChild(
        [],
        {
          DATABASE_URL: o.dbUrl,
          FAKE_WORLD_URL: worlds[s.idx]!.url,
          INSTANCE_ID: s.instanceId,
          HTTP_PORT: String(s.port),
          LOG_LEVEL: o.logLevel ?? 'warn',
          NODE_ENV: 'test',
          ...env,
        },
        { entry: 'test/helpers/fakeWorldServe.ts' },
      );
      try {
        await waitForHttp(`${root(s)}/api/v1/health`, 60_000, child);
        if (finishing) {
          // The run ended while this one started: nobody would stop it.
          child.proc.kill('SIGTERM');
          await child.exited;
          s.state = 'down';
          return;
        }
        const inc: Incarnation = {
          slot: s.idx,
          n: s.incarnations.length + 1,
          pid: child.proc.pid ?? -1,
          child,
          exited: false,
          expectedExit: false,
          fencedMetric: null,
        };
        s.incarnations.push(inc);
        s.cur = inc;
        s.state = 'up';
        faultLog.push({ at: Date.now(), what: `${s.instanceId}#${inc.n} up (pid ${inc.pid})` });
        void child.exited.then(async (how) => {
          inc.exited = true;
          if (inc.expectedExit || finishing) return;
          unexpectedExits++;
          const err = child
            .stderr()
            .trim()
            .split('\n')
            .filter((l) => l.trim() !== '')
            .slice(-25)
            .join('\n        ');
          const out = child
            .stdout()
            .trim()
            .split('\n')
            .slice(-3)
            .map((l) => l.slice(0, 400))
            .join('\n        ');
          problem(
            `daemon ${s.instanceId} #${inc.n} exited unexpectedly (code ${how.code}, signal ${how.signal}); stderr:\n        ${err.slice(-4000)}\n      last log lines:\n        ${out}`,
          );
          if (s.cur === inc) {
            s.cur = undefined;
            await start(s);
          }
        });
        return;
      } catch (raw) {
        // E.g. exit 78: the previous process's instance lock is not released yet.
        if (child.proc.exitCode === null) {
          child.proc.kill('SIGKILL');
          await child.exited;
        }
        if (attempt >= 10) throw raw;
        details.push(
          `info: ${s.instanceId} start attempt ${attempt} failed: ${String((raw as Error).message)
            .split('\n')[0]
            ?.slice(0, 200)}`,
        );
        await sleep(500 * attempt);
      }
    }
  }
  await Promise.all(slots.map((s) => start(s)));

  async function scrape(s: Slot): Promise<void> {
    const inc = s.cur;
    if (!inc || inc.exited) return;
    try {
      const res = await fetch(`${root(s)}/metrics`, { signal: AbortSignal.timeout(2000) });
      const m = /^spm_fenced_writes_rejected_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)/m.exec(await res.text());
      if (m) inc.fencedMetric = Math.max(inc.fencedMetric ?? 0, Number(m[1]));
    } catch {
      // busy or gone: the log still counts
    }
  }

  // ------------------------------------------------------------------ faults
  const byKind: Record<FaultKind, number> = { kill: 0, stop: 0, term: 0 };
  let faults = 0;
  let progress = 0;
  let faultsOver = false;
  const impaired = () => slots.filter((s) => s.state !== 'up').length;
  function pickKind(): FaultKind {
    const total = FAULT_KINDS.reduce((a, k) => a + (weights[k] ?? 0), 0);
    let r = random() * total;
    for (const k of FAULT_KINDS) {
      r -= weights[k] ?? 0;
      if (r < 0) return k;
    }
    return 'kill';
  }
  async function fault(s: Slot, kind: FaultKind): Promise<void> {
    const inc = s.cur!;
    await scrape(s);
    const who = `${s.instanceId}#${inc.n}`;
    if (kind === 'stop') {
      s.state = 'stopped';
      faultLog.push({ at: Date.now(), what: `${who} SIGSTOP` });
      inc.child.proc.kill('SIGSTOP');
      await sleep(2 * ttl * 1000);
      inc.child.proc.kill('SIGCONT');
      faultLog.push({ at: Date.now(), what: `${who} SIGCONT` });
      s.state = 'up';
      return;
    }
    faultLog.push({ at: Date.now(), what: `${who} ${kind === 'kill' ? 'SIGKILL' : 'SIGTERM'}` });
    s.state = kind === 'kill' ? 'down' : 'stopping';
    inc.expectedExit = true;
    inc.child.proc.kill(kind === 'kill' ? 'SIGKILL' : 'SIGTERM');
    const how = await Promise.race([inc.child.exited, sleep(30_000).then(() => null)]);
    if (how === null) {
      problem(`daemon ${s.instanceId} #${inc.n} did not stop within 30 s of SIGTERM (killed)`);
      inc.child.proc.kill('SIGKILL');
      await inc.child.exited;
    }
    s.cur = undefined;
    s.state = 'down';
    await start(s);
  }
  const faultTasks: Promise<void>[] = [];
  let lastFaultAt = Date.now();
  let faultsAfterWork = 0;
  let injector: Promise<void> = Promise.resolve();
  const startInjector = () =>
    (injector = (async () => {
      while (faults < o.faults && !faultsOver) {
        await sleep(300 + random() * 900);
        // Spread over the work: allowed so far ∝ progress (all of them by ~80 %), and at least one
        // every 6 s so that a slow workload still gets them all.
        const byProgress = Math.ceil(o.faults * Math.min(1, progress * 1.25)) + 2;
        if (faults >= byProgress && Date.now() - lastFaultAt < 6000) continue;
        if (impaired() >= nReplicas - 1) continue; // one replica always up
        const candidates = slots.filter((s) => s.state === 'up' && s.cur && !s.cur.exited);
        if (candidates.length === 0) continue;
        const s = candidates[Math.floor(random() * candidates.length)]!;
        const kind = pickKind();
        faults++;
        byKind[kind]++;
        if (progress >= 1) faultsAfterWork++;
        lastFaultAt = Date.now();
        faultTasks.push(
          fault(s, kind).catch(
            (raw) => void problem(`fault ${kind} on ${s.instanceId} failed: ${(raw as Error).message}`),
          ),
        );
        if (faults % 10 === 0)
          log(
            `chaos-replicas: ${faults} faults so far (${JSON.stringify(byKind)}), ${Math.round(progress * 100)} % final`,
          );
      }
      await Promise.all(faultTasks);
    })());

  // ------------------------------------------------------------------ operator events
  let rr = 0;
  function nextReplica(): Slot | undefined {
    const live = slots.filter((s) => s.cur && !s.cur.exited && (s.state === 'up' || s.state === 'stopped'));
    if (live.length === 0) return undefined;
    return live[rr++ % live.length];
  }
  const http: Record<string, number> = {};
  const logicals: Logical[] = [];
  let keySeq = 0;
  async function send(s: Slot, l: Logical): Promise<{ status: number; body: any }> {
    try {
      const res = await fetch(`${root(s)}/api/v1${l.path}`, {
        method: l.method,
        headers: {
          authorization: `Bearer ${['approve', 'reject', 'snooze'].includes(l.action) ? approverToken : token}`,
          'idempotency-key': l.key,
          'x-request-id': l.key,
          ...(l.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(l.body !== undefined ? { body: JSON.stringify(l.body) } : {}),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      let body: any = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      return { status: res.status, body };
    } catch {
      return { status: 0, body: null };
    }
  }
  /** Is the outcome of `l` settled although no attempt was acknowledged? (every unanswered process is gone) */
  async function settle(l: Logical): Promise<'happened' | 'abandoned' | null> {
    if (l.attempts.some((a) => a.status === 0 && !a.inc.exited)) return null; // a frozen or slow replica may still answer
    if (l.action === 'queue') {
      const ids = (l.body as { errata_ids: string[] }).errata_ids;
      const n = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(DISTINCT errata_id)::int AS n FROM patch_test_queue WHERE errata_id = ANY(${sql.array(ids, 'text')})`);
      return n === ids.length ? 'happened' : 'abandoned';
    }
    const inJournal = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM patch_transitions WHERE queue_id = ${l.entryId} AND request_id = ${l.key}`);
    if (inJournal > 0) return 'happened';
    const inbox = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM operator_inbox WHERE queue_id = ${l.entryId} AND meta->>'requestId' = ${l.key} AND status IN ('pending', 'taken')`);
    return inbox > 0 ? null : 'abandoned';
  }
  /** One logical operator event: one key, retried until it is answered (or provably never happened). */
  async function operator(l: Logical): Promise<void> {
    const began = Date.now();
    for (let attempt = 1; ; attempt++) {
      const s = nextReplica();
      if (!s?.cur) {
        await sleep(200);
        continue;
      }
      const inc = s.cur;
      const r = await send(s, l);
      const code = typeof r.body?.error?.code === 'string' ? r.body.error.code : null;
      l.attempts.push({ slot: s.idx, inc, status: r.status, code });
      const k = `${r.status}${code ? `:${code}` : ''}`;
      http[k] = (http[k] ?? 0) + 1;
      l.last = k;
      if (r.status >= 200 && r.status < 300) {
        l.outcome = 'acked';
        return;
      }
      if (r.status === 422 && code === 'idempotency_key_reuse')
        problem(`operator event ${l.key} (${l.action} entry ${l.entryId}): 422 idempotency_key_reuse`);
      const retry = r.status === 0 || r.status >= 500 || (r.status === 409 && code === 'request_in_progress');
      if (!retry) {
        l.outcome = 'refused';
        return;
      }
      if (r.status === 409 || Date.now() - began > 20_000) {
        // The key is held by an attempt that never answered: if its process is gone and nothing of
        // it is left anywhere (journal, inbox), it never happened and never will.
        const settled = await settle(l);
        if (settled !== null && (r.status === 409 || settled === 'happened')) {
          l.outcome = settled;
          return;
        }
      }
      if (Date.now() - began > 240_000) {
        l.outcome = 'gave_up';
        return;
      }
      await sleep(Math.min(3000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random()));
    }
  }
  function launch(
    entryId: number,
    action: Action,
    method: string,
    path: string,
    body: unknown,
  ): { l: Logical; p: Promise<void> } {
    const l: Logical = {
      key: `${runTag}-${++keySeq}`,
      entryId,
      action,
      method,
      path,
      body,
      attempts: [],
      outcome: 'pending',
      last: '',
    };
    logicals.push(l);
    return { l, p: operator(l) };
  }

  // Queue everything first, before any fault: creating entries is setup, the faults are for the
  // workflows (as in the other chaos harnesses). Round-robin, so every replica owns some entries
  // from the start; what did not get queued is queued again under a new key.
  for (let round = 1; ; round++) {
    const present = new Set(
      await db.anyFirst(sql.type(z.object({ errata_id: z.string() }))`SELECT errata_id FROM patch_test_queue`),
    );
    const missing = names.filter((n) => !present.has(n));
    if (missing.length === 0) break;
    if (round > 5) {
      problem(`${missing.length} errata could not be queued in 5 rounds`);
      break;
    }
    const chunks: string[][] = [];
    for (let i = 0; i < missing.length; i += 10) chunks.push(missing.slice(i, i + 10));
    const next = () => chunks.shift();
    await Promise.all(
      Array.from({ length: nReplicas }, async () => {
        for (let ids = next(); ids; ids = next()) {
          const l: Logical = {
            key: `${runTag}-q${round}-${ids[0]}`,
            entryId: 0,
            action: 'queue',
            method: 'POST',
            path: '/queue',
            body: { errata_ids: ids },
            attempts: [],
            outcome: 'pending',
            last: '',
          };
          logicals.push(l);
          await operator(l);
        }
      }),
    );
  }
  startInjector();

  // ------------------------------------------------------------------ GET /lanes of every replica
  let lanesConflicts = 0;
  let lanesSamples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sleep(1000);
      const seen = new Map<string, { slot: number; entryId: number }[]>();
      await Promise.all(
        slots
          .filter((s) => s.state === 'up' && s.cur)
          .map(async (s) => {
            try {
              const res = await fetch(`${root(s)}/api/v1/lanes`, {
                headers: { authorization: `Bearer ${token}` },
                signal: AbortSignal.timeout(1500),
              });
              if (!res.ok) return;
              const b = (await res.json()) as { lanes: { system: string; entryId: number | null; leader: boolean }[] };
              for (const l of b.lanes)
                if (l.leader && l.entryId !== null)
                  seen.set(l.system, [...(seen.get(l.system) ?? []), { slot: s.idx, entryId: l.entryId }]);
            } catch {
              // busy or gone
            }
          }),
      );
      lanesSamples++;
      for (const [system, who] of seen) {
        if (new Set(who.map((w) => w.entryId)).size > 1) {
          lanesConflicts++;
          if (lanesConflicts <= 5)
            problem(
              `GET /lanes: ${system} led with an entry by ${who.map((w) => `${slots[w.slot]!.instanceId} (entry ${w.entryId})`).join(' and ')}`,
            );
        }
      }
    }
  })();

  // ------------------------------------------------------------------ the workload
  const rowsQ = () =>
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
  const outstanding = new Map<number, Promise<void>>();
  /** An entry whose event was refused is asked again once its revision moved (or after 5 s). */
  const refusedAt = new Map<number, { revision: number; at: number }>();
  const snoozed = new Set<number>();
  const hardDeadline = t0 + (o.timeoutMs ?? 2_400_000);
  let drainUntil = Infinity;
  let stopReason = 'all final';
  for (;;) {
    const all = await rowsQ();
    const open = all.filter((r) => !FINAL.includes(r.status));
    progress = (all.length - open.length) / o.workflows;
    const injectorDone = faults >= o.faults && faultTasks.length === faults && impaired() === 0;
    if (all.length >= o.workflows && open.length === 0 && (injectorDone || faultsOver)) break;
    if (injectorDone && drainUntil === Infinity) drainUntil = Date.now() + (o.drainMs ?? 120_000);
    if (Date.now() > drainUntil) {
      stopReason = `drain of ${Math.round((o.drainMs ?? 120_000) / 1000)} s over`;
      break;
    }
    if (Date.now() > hardDeadline) {
      stopReason = 'deadline';
      break;
    }
    for (const r of open) {
      const refused = refusedAt.get(r.id);
      if (outstanding.has(r.id) || (refused && refused.revision === r.revision && Date.now() - refused.at < 5000))
        continue;
      let p: { l: Logical; p: Promise<void> } | undefined;
      if (r.status === 'pending_approval') {
        let d = decisionFor(r.errata_id, o.rollbackTest === true);
        if (d === 'snooze' && snoozed.has(r.id)) d = 'approve';
        if (d === 'approve')
          p = launch(r.id, 'approve', 'POST', `/approvals/${r.id}/approve`, { reason: 'chaos-replicas' });
        else if (d === 'reject')
          p = launch(r.id, 'reject', 'POST', `/approvals/${r.id}/reject`, { reason: 'chaos-replicas: rejected' });
        else if (d === 'rollback_test') {
          const testId = await db.maybeOneFirst(
            sql.type(z.object({ id: z.number() }))`SELECT max(id)::int AS id FROM patch_tests WHERE queue_id = ${r.id}`,
          );
          if (testId !== null)
            p = launch(r.id, 'rollback_test', 'POST', `/tests/${testId}/rollback`, {
              reason: 'chaos-replicas: roll the test system back',
            });
        } else {
          p = launch(r.id, 'snooze', 'POST', `/approvals/${r.id}/snooze`, {
            reason: 'chaos-replicas: later',
            until: new Date(Date.now() + 3000).toISOString(),
          });
        }
      } else if (r.status === 'needs_attention') {
        p =
          r.phase === 'prod' || r.phase === 'prod_rollback'
            ? launch(r.id, 'force_rollback', 'POST', `/queue/${r.id}/force-rollback`, {
                reason: 'chaos-replicas: halted wave',
                rollback_type: 'package',
              })
            : launch(r.id, 'mark_failed', 'POST', `/queue/${r.id}/mark-failed`, {
                reason: 'chaos-replicas: operator gives up',
              });
      }
      if (!p) continue;
      const rev = r.revision;
      const id = r.id;
      const l = p.l;
      outstanding.set(
        id,
        p.p.finally(() => {
          outstanding.delete(id);
          // A snooze that happened, or could not (its time passed during retries): approve next.
          if (l.action === 'snooze' && l.outcome !== 'abandoned' && l.outcome !== 'gave_up') snoozed.add(id);
          if (l.outcome === 'refused') refusedAt.set(id, { revision: rev, at: Date.now() });
        }),
      );
    }
    await sleep(200);
  }
  faultsOver = true;
  await injector;
  await Promise.all(outstanding.values());
  sampling = false;
  await sampler;

  // ------------------------------------------------------------------ stop every replica (scraped first)
  finishing = true;
  await Promise.all([...starting]);
  await Promise.all(
    slots.map(async (s) => {
      const inc = s.cur;
      if (!inc || inc.exited) return;
      await scrape(s);
      inc.expectedExit = true;
      inc.child.proc.kill('SIGTERM');
      const how = await Promise.race([inc.child.exited, sleep(30_000).then(() => null)]);
      if (how === null) {
        problem(`daemon ${s.instanceId} #${inc.n} did not stop within 30 s of SIGTERM at the end (killed)`);
        inc.child.proc.kill('SIGKILL');
        await inc.child.exited;
      }
    }),
  );
  for (const w of worlds) w.server.close();

  // ------------------------------------------------------------------ verdict
  const incs = slots.flatMap((s) => s.incarnations);
  const logOf = (inc: Incarnation) => `${inc.child.stdout()}\n${inc.child.stderr()}`;
  interface LogLine {
    inc: Incarnation;
    time: string;
    msg: string;
    entryId?: number;
    key?: string;
    err?: string;
    why?: string;
    lane?: string;
  }
  const lines: LogLine[] = [];
  for (const inc of incs) {
    for (const line of logOf(inc).split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const j = JSON.parse(line) as {
          time?: string | number;
          msg?: string;
          entryId?: number;
          id?: number;
          key?: string;
          err?: unknown;
          why?: string;
          lane?: string;
          role?: string;
        };
        if (!j.msg) continue;
        lines.push({
          inc,
          time: typeof j.time === 'string' ? j.time.slice(11, 23) : String(j.time ?? ''),
          msg: j.msg,
          ...(j.entryId !== undefined
            ? { entryId: j.entryId }
            : typeof j.id === 'number' && j.msg.startsWith('test lane')
              ? { entryId: j.id }
              : {}),
          ...(j.lane ? { lane: j.lane } : j.role?.startsWith('lane:') ? { lane: j.role.slice(5) } : {}),
          ...(j.key ? { key: j.key } : {}),
          ...(j.err !== undefined ? { err: String(j.err) } : {}),
          ...(j.why ? { why: j.why } : {}),
        });
      } catch {
        // not a log line
      }
    }
  }
  const isFenceLine = (l: LogLine) =>
    /^effect \S+ fenced (before it ran|at its result)/.test(l.msg) ||
    (l.msg.startsWith('persisting a transition failed for good') && (l.err ?? '').includes('was fenced'));

  // stale_rejected
  let staleRejected = 0;
  let fromLogs = 0;
  let fromMetrics = 0;
  for (const inc of incs) {
    const logged = lines.filter((l) => l.inc === inc && isFenceLine(l)).length;
    fromLogs += logged;
    fromMetrics += inc.fencedMetric ?? 0;
    staleRejected += Math.max(logged, inc.fencedMetric ?? 0);
  }
  const fenceSamples = lines
    .filter(isFenceLine)
    .slice(0, 4)
    .map((l) => `${slots[l.inc.slot]!.instanceId}#${l.inc.n} ${l.time} ${l.msg.slice(0, 110)}`);
  details.push(
    `info: stale_rejected ${staleRejected} = Σ per process max(log lines ${fromLogs} total, last scrape ${fromMetrics} total) over ${incs.length} processes; e.g. ${fenceSamples.join(' | ') || 'none'}`,
  );

  const final = await rowsQ();
  const trail = async (id: number): Promise<string> => {
    const j = await loadJournal(db, id);
    const jt0 = j[0]?.at ?? 0;
    const journal = j
      .map((r) => {
        const p = r.payload as { error?: { message?: string }; reason?: string; testSystem?: { name?: string } } | null;
        const msg = p?.error?.message ?? p?.reason ?? p?.testSystem?.name;
        const by = r.event_type.startsWith('xstate.') ? '' : ` by ${r.actor}`;
        return `${r.seq}@${((r.at - jt0) / 1000).toFixed(2)}s e${r.owner_epoch} ${r.event_type}${by}→${r.to_state}${r.request_id ? ` [${r.request_id}]` : ''}${msg ? ` (${String(msg).slice(0, 60)})` : ''}`;
      })
      .join('; ');
    const said = lines
      .filter((l) => l.entryId === id || (l.key ?? '').startsWith(`${id}:`))
      .sort((a, b) => a.time.localeCompare(b.time))
      .slice(0, 14)
      .map(
        (l) =>
          `${slots[l.inc.slot]!.instanceId}#${l.inc.n} ${l.time} ${l.msg.slice(0, 80)}${l.key ? ` [${l.key}]` : ''}${l.why ? `: ${l.why.slice(0, 60)}` : ''}`,
      )
      .join('; ');
    return `journal (seq 1 at ${fmt(jt0)}): ${journal.slice(0, 3000)}${said ? ` | logs: ${said}` : ''}`;
  };
  let trails = 0;
  const withTrail = async (id: number, text: string) =>
    problem(trails++ < 8 ? `${text}\n      ${await trail(id)}` : text);

  // duplicates
  const dups = world.duplicates();
  for (const d of dups.slice(0, 10)) {
    const key = d.key.split('|')[1] ?? '';
    const row = await db.maybeOne(sql.type(
      z.object({
        owner_id: z.string().nullable(),
        owner_epoch: z.number().nullable(),
        executions: z.number(),
        status: z.string(),
      }),
    )`
      SELECT owner_id, owner_epoch, executions, status FROM effects WHERE key = ${key}`);
    const calls = world.calls.get(d.key) ?? [];
    const from = (calls[0]?.at ?? 0) - 15_000;
    const to = (calls.at(-1)?.end ?? calls.at(-1)?.at ?? 0) + 1000;
    const around = faultLog
      .filter((f) => f.at >= from && f.at <= to)
      .map((f) => `${fmt(f.at)} ${f.what}`)
      .join(', ');
    await withTrail(
      Number(key.split(':')[0]),
      `duplicate: ${d.key} ran ×${d.count} in the fake world; ledger: ${row ? `${row.status}, ${row.executions} executions, last by ${row.owner_id} epoch ${row.owner_epoch}` : 'no row'}
      world calls: ${calls.map((c) => `${c.op} by ${c.caller} ${fmt(c.at)}–${c.end === null ? '…' : fmt(c.end)} ${c.result}`).join('; ')}
      faults around: ${around || 'none'}`,
    );
  }
  const duplicates = dups.reduce((s, d) => s + d.count - 1, 0);

  // lost, and journals written by a stale owner
  let lost = 0;
  let staleEpochRows = 0;
  const journals = new Map<number, Awaited<ReturnType<typeof loadJournal>>>();
  for (const r of final) {
    const journal = await loadJournal(db, r.id);
    journals.set(r.id, journal);
    const broken = verifyChain(journal);
    const lastRow = journal[journal.length - 1];
    if (broken || !lastRow || lastRow.to_state.split('.')[0] !== r.status) {
      lost++;
      await withTrail(
        r.id,
        `lost: entry ${r.id}: journal ${broken ? `broken at ${broken.seq} (${broken.problem})` : `ends in ${lastRow?.to_state} but status ${r.status}`}`,
      );
    }
    for (let i = 1; i < journal.length; i++) {
      if (journal[i]!.owner_epoch < journal[i - 1]!.owner_epoch) {
        staleEpochRows++;
        await withTrail(
          r.id,
          `stale write: entry ${r.id} journal seq ${journal[i]!.seq} written under epoch ${journal[i]!.owner_epoch} after seq ${journal[i - 1]!.seq} under epoch ${journal[i - 1]!.owner_epoch}`,
        );
        break;
      }
    }
    const reachedProd = journal.some((j) => (PROD_STATUSES as readonly string[]).includes(j.to_state.split('.')[0]!));
    const ackedApprove = logicals.some((l) => l.entryId === r.id && l.action === 'approve' && l.outcome === 'acked');
    if (reachedProd || ackedApprove) {
      const n = await db.oneFirst(
        sql.type(
          z.object({ n: z.number() }),
        )`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${r.id} AND action = 'approved'`,
      );
      if (n !== 1) {
        lost++;
        await withTrail(r.id, `lost: entry ${r.id}: ${n} approval rows (approval acknowledged: ${ackedApprove})`);
      }
    }
  }
  const journalled = new Set(
    (
      await db.any(sql.type(z.object({ queue_id: z.number(), request_id: z.string(), event_type: z.string() }))`
      SELECT DISTINCT queue_id, request_id, event_type FROM patch_transitions WHERE request_id LIKE ${`${runTag}-%`}`)
    ).map((r) => `${r.queue_id}|${r.request_id}|${r.event_type}`),
  );
  for (const l of logicals) {
    if (l.outcome !== 'acked' || l.entryId === 0) continue;
    if (!journalled.has(`${l.entryId}|${l.key}|${EVENT_OF[l.action]}`)) {
      lost++;
      await withTrail(
        l.entryId,
        `lost: entry ${l.entryId}: ${l.action} acknowledged (${l.last}, key ${l.key}, attempts ${l.attempts.map((a) => `${slots[a.slot]!.instanceId}#${a.inc.n}:${a.status}${a.code ? `:${a.code}` : ''}`).join(',')}) but no ${EVENT_OF[l.action]} row carries it`,
      );
    }
  }
  const created = await db.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_test_queue`,
  );
  if (created !== o.workflows) problem(`${created} entries were created for ${o.workflows} errata`);

  // unfinished
  const unfinishedRows = final.filter((r) => !FINAL.includes(r.status));
  for (const r of unfinishedRows.slice(0, 10)) {
    const own = await db.maybeOne(sql.type(
      z.object({ owner_id: z.string().nullable(), lease_ok: z.boolean().nullable() }),
    )`
      SELECT owner_id, lease_until > now() AS lease_ok FROM patch_test_queue WHERE id = ${r.id}`);
    const pending = logicals
      .filter((l) => l.entryId === r.id)
      .slice(-2)
      .map((l) => `${l.action}:${l.outcome}:${l.last}`)
      .join(', ');
    await withTrail(
      r.id,
      `unfinished: entry ${r.id} (${r.errata_id}) is ${r.status}; owner ${own?.owner_id} lease ${own?.lease_ok ? 'live' : 'expired'}; last operator events ${pending || 'none'}`,
    );
  }
  const unfinished = unfinishedRows.length + Math.max(0, o.workflows - final.length);

  // lane overlaps: the journal's holding intervals and the fake world's test spans, per system.
  // The journal's intervals are ordered by transaction id (xmin), not by the rows' `at`: `at` is
  // each replica's own estimate of the database clock, tens of ms apart between replicas (see the
  // info line on time in the journals), while a lane starts its next entry only after reading the
  // release committed, so the start is written by a later transaction whatever the clocks say.
  interface Span {
    entryId: number;
    system: string;
    from: number;
    to: number;
    src: string;
    label: string;
  }
  const spans: Span[] = [];
  const xrows = await db.any(sql.type(
    z.object({
      queue_id: z.number(),
      seq: z.number(),
      event_type: z.string(),
      to_state: z.string(),
      ts: z.string().nullable(),
      xid: z.number(),
      at: z.number(),
    }),
  )`
    SELECT queue_id, seq, event_type, to_state, payload->'testSystem'->>'name' AS ts, xmin::text::bigint AS xid, (extract(epoch FROM at) * 1000)::float8 AS at
    FROM patch_transitions ORDER BY queue_id, seq`);
  let backwards = 0;
  let backwardsMaxMs = 0;
  for (let i = 0; i < xrows.length; ) {
    const id = xrows[i]!.queue_id;
    let system: string | null = null;
    let open: (typeof xrows)[number] | null = null;
    let prevAt = -Infinity;
    for (; i < xrows.length && xrows[i]!.queue_id === id; i++) {
      const row = xrows[i]!;
      if (row.at < prevAt) {
        backwards++;
        backwardsMaxMs = Math.max(backwardsMaxMs, prevAt - row.at);
      }
      prevAt = row.at;
      const st = row.to_state.split('.')[0]!;
      if (row.event_type === 'START_TEST' && row.ts) system = row.ts;
      if (open === null && HOLDS.includes(st)) open = row;
      else if (open !== null && !MAY_HOLD.includes(st)) {
        if (system)
          spans.push({
            entryId: id,
            system,
            from: open.xid,
            to: row.xid,
            src: 'journal',
            label: `seq ${open.seq}–${row.seq} (xid ${open.xid}–${row.xid}, ${fmt(open.at)}–${fmt(row.at)})`,
          });
        open = null;
      }
    }
    if (open !== null && system)
      spans.push({
        entryId: id,
        system,
        from: open.xid,
        to: Infinity,
        src: 'journal',
        label: `seq ${open.seq}– (xid ${open.xid}–, ${fmt(open.at)}–)`,
      });
  }
  details.push(
    `info: time in the journals: ${backwards} rows have an \`at\` earlier than the row before them (at most ${Math.round(backwardsMaxMs)} ms)`,
  );
  for (const s of world.testSpans.values()) {
    spans.push({
      entryId: s.entryId,
      system: s.system,
      from: s.first,
      to: s.last,
      src: 'world',
      label: `attempt ${s.attempt}, ${s.calls} calls ${fmt(s.first)}–${fmt(s.last)}`,
    });
  }
  const overlaps = new Map<string, string>();
  for (const system of new Set(spans.map((s) => s.system))) {
    for (const src of ['journal', 'world']) {
      const list = spans.filter((s) => s.system === system && s.src === src).sort((a, b) => a.from - b.from);
      for (let i = 0; i < list.length; i++) {
        for (let j = i + 1; j < list.length && list[j]!.from < list[i]!.to; j++) {
          const a = list[i]!;
          const b = list[j]!;
          if (a.entryId === b.entryId) continue;
          const k = `${system}|${Math.min(a.entryId, b.entryId)}|${Math.max(a.entryId, b.entryId)}`;
          const text = `lane overlap (${src}): ${system}: entry ${a.entryId} held it ${a.label}; entry ${b.entryId} ${b.label}`;
          overlaps.set(k, overlaps.has(k) ? `${overlaps.get(k)}\n      ${text}` : text);
        }
      }
    }
  }
  let shownOverlaps = 0;
  for (const [k, text] of overlaps) {
    if (shownOverlaps++ >= 6) break;
    const [, a, b] = k.split('|');
    await withTrail(Number(a), text);
    if (shownOverlaps <= 2) {
      details.push(`      other entry: ${await trail(Number(b))}`);
      const system = k.split('|')[0]!;
      const laneLines = lines
        .filter((l) => l.lane?.endsWith(system))
        .sort((x, y) => x.time.localeCompare(y.time))
        .map(
          (l) =>
            `${slots[l.inc.slot]!.instanceId}#${l.inc.n} ${l.time} ${l.msg.slice(0, 70)}${l.entryId !== undefined ? ` (entry ${l.entryId})` : ''}`,
        );
      if (laneLines.length > 0) details.push(`      lane ${system} in the logs: ${laneLines.slice(-25).join('; ')}`);
      details.push(
        `      faults: ${faultLog
          .map((f) => `${fmt(f.at)} ${f.what}`)
          .join(', ')
          .slice(0, 3000)}`,
      );
    }
  }
  const startsBySystem = new Map<string, number>();
  for (const s of spans) if (s.src === 'journal') startsBySystem.set(s.system, (startsBySystem.get(s.system) ?? 0) + 1);

  // what else the run saw
  const outcomes: Record<string, number> = {};
  for (const l of logicals) outcomes[`${l.action}:${l.outcome}`] = (outcomes[`${l.action}:${l.outcome}`] ?? 0) + 1;
  const finals: Record<string, number> = {};
  for (const r of final) finals[r.status] = (finals[r.status] ?? 0) + 1;
  const reruns = await db.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM effects WHERE executions > 1`,
  );
  const takeovers = await db.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM (SELECT queue_id, owner_epoch FROM patch_transitions GROUP BY queue_id, owner_epoch) x`);
  details.push(
    `info: stop: ${stopReason}; faults ${JSON.stringify(byKind)} (${faultsAfterWork} after every entry was final); processes started ${incs.length}; unexpected exits ${unexpectedExits}`,
  );
  details.push(`info: operator events ${JSON.stringify(outcomes)}; http ${JSON.stringify(http)}`);
  details.push(
    `info: final statuses ${JSON.stringify(finals)}; test-system holds per system (journal) ${JSON.stringify(Object.fromEntries(startsBySystem))}; GET /lanes samples ${lanesSamples}, conflicts ${lanesConflicts}`,
  );
  details.push(
    `info: effect keys the daemons ran more than once (reconciled re-runs): ${reruns}; fake-world executions ${[...world.executions.values()].reduce((a, b) => a + b, 0)}; (entry, epoch) pairs in the journals ${takeovers}`,
  );
  const said = new Map<string, { n: number; sample: string }>();
  for (const l of lines) {
    const k = l.msg
      .replace(/\b\d+(:[\w#]+)+/g, '<key>')
      .replace(/\b(entry|queue entry) \d+/g, '$1 <id>')
      .slice(0, 140);
    const s = said.get(k) ?? {
      n: 0,
      sample: `${slots[l.inc.slot]!.instanceId}#${l.inc.n}${l.err ? ` err: ${l.err.slice(0, 120)}` : ''}${l.why ? ` why: ${l.why.slice(0, 80)}` : ''}`,
    };
    s.n++;
    said.set(k, s);
  }
  for (const [msg, s] of [...said].sort((a, b) => b[1].n - a[1].n).slice(0, 25))
    details.push(`info: daemon log ×${s.n}: ${msg} — e.g. ${s.sample}`);
  await db.end();
  return {
    replicas: nReplicas,
    faults,
    byKind,
    workflows: o.workflows,
    duplicates,
    lost,
    unfinished,
    staleRejected,
    laneOverlaps: overlaps.size,
    otherProblems:
      staleEpochRows +
      lanesConflicts +
      unexpectedExits +
      details.filter((d) => d.includes('idempotency_key_reuse')).length,
    seconds: Math.round((Date.now() - t0) / 1000),
    details,
  };
}

function fmt(t: number): string {
  if (!Number.isFinite(t)) return 'end';
  return new Date(t).toISOString().slice(11, 23);
}

/** The goal of issue 11. */
export function goalMet(r: ReplicasReport): boolean {
  return r.duplicates === 0 && r.lost === 0 && r.unfinished === 0 && r.laneOverlaps === 0 && r.staleRejected > 0;
}

export function lastLine(r: ReplicasReport): string {
  return `chaos-replicas: replicas=${r.replicas} faults=${r.faults} workflows=${r.workflows} duplicates=${r.duplicates} lost=${r.lost} unfinished=${r.unfinished} stale_rejected=${r.staleRejected} lane_overlaps=${r.laneOverlaps}`;
}
