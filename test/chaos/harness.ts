/**
 * Chaos harness: complete workflows driven through the real daemon (a child process) while it is
 * killed with SIGKILL at random moments and restarted. The fake world lives in this process, so it
 * counts every effect across kills. Checks: 0 duplicate effects, 0 lost or reordered transitions
 * (contiguous, hash-chained journals that end in the entry's status), 0 lost approvals (every
 * acknowledged approval has its row), 100 % of workflows final.
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
import { adminToken, api, spawnDaemon, type DaemonProc } from '../helpers/daemon.ts';
import { freePort } from '../helpers/proc.ts';

export interface ChaosOptions {
  dbUrl: string;
  workflows: number;
  kills: number;
  reconcile: boolean;
  /** Workflows under way at once (default 40). */
  concurrency?: number;
  timeoutMs?: number;
  log?: (line: string) => void;
}
export interface ChaosReport {
  kills: number;
  workflows: number;
  duplicates: number;
  lost: number;
  unfinished: number;
  seconds: number;
  details: string[];
}

const FINAL: readonly string[] = FINAL_STATUSES;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The mix of errata every chaos harness runs: outcomes encoded in the names (see the fake world). */
export function errataFor(i: number): string {
  const kind = ['', '', '', '', '', '-VALFAIL', '-REBOOT', '-FLAKY', '-HALT', '', '-INCONCL', ''][i % 12];
  return `CHAOS-${String(i).padStart(5, '0')}${kind}`;
}

/** The chaos harnesses' test settings: no waits, long timeouts, many quick retries, time × 50 ms. */
export const CHAOS_THRESHOLDS = {
  wait_after_patch_seconds: 0,
  wait_after_reboot_seconds: 0,
  reboot_timeout_seconds: 600,
  step_timeout_seconds: 600,
  retry_base_seconds: 1,
  retry_max_seconds: 4,
  retry_max_attempts: 50,
  time_scale_ms: 50,
};

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => undefined);
  const t0 = Date.now();
  const world = new FakeWorld({ responseDelayMs: 25, waves: 2 });
  const served = await world.serve();
  const db = await createDb({ url: o.dbUrl, poolMax: 5 });
  await setConfigValue(db, 'test_thresholds', CHAOS_THRESHOLDS, 'chaos');
  const names = Array.from({ length: o.workflows }, (_, i) => errataFor(i));
  await seedErrata(db, names);
  const token = await adminToken(db);
  const port = await freePort();
  const env: Record<string, string> = o.reconcile ? {} : { FAKE_WORLD_RECONCILE: '0' };
  let daemon: DaemonProc = await spawnDaemon({ dbUrl: o.dbUrl, worldUrl: served.url, instanceId: 'chaos', port, env });
  let up = true;
  let kills = 0;
  let done = false;
  const ackApproved = new Set<number>();
  const call = (method: string, path: string, body?: unknown) =>
    api(daemon.base, token)(method, path, body).catch(() => ({ status: 0, body: null }));

  // Queue everything first: creating entries is setup; the kills are for the workflows.
  for (let i = 0; i < names.length; i += 250) {
    for (;;) {
      const r = await call('POST', '/queue', { errata_ids: names.slice(i, i + 250) });
      if (r.status === 201 || r.status === 409) break;
      await sleep(100);
    }
  }

  const killer = (async () => {
    while (!done && kills < o.kills) {
      await sleep(150 + Math.random() * 600);
      if (done) break;
      if (process.env.CHAOS_DEBUG) {
        const inflight = await db.oneFirst(
          sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM effects WHERE status = 'started'`,
        );
        const open = await db.oneFirst(
          sql.type(
            z.object({ n: z.number() }),
          )`SELECT count(*)::int AS n FROM patch_test_queue WHERE status NOT IN ('completed','rejected','rolled_back','removed')`,
        );
        log(`chaos debug: kill ${kills + 1}: effects in flight ${inflight}, open entries ${open}`);
      }
      up = false;
      daemon.child.proc.kill('SIGKILL');
      await daemon.child.exited;
      kills++;
      daemon = await spawnDaemon({ dbUrl: o.dbUrl, worldUrl: served.url, instanceId: 'chaos', port, env });
      up = true;
      if (kills % 10 === 0) log(`chaos: ${kills} kills so far`);
    }
  })();

  const deadline = Date.now() + (o.timeoutMs ?? 600_000);
  const rows = () =>
    db.any(sql.type(z.object({ id: z.number(), status: z.string(), phase: z.string().nullable() }))`
    SELECT id, status, snapshot->'context'->'attention'->>'phase' AS phase FROM patch_test_queue`);
  for (;;) {
    const all = await rows();
    const open = all.filter((r) => !FINAL.includes(r.status));
    if (all.length >= o.workflows && open.length === 0) break;
    if (Date.now() > deadline) break;
    if (!up) {
      await sleep(50);
      continue;
    }
    // Pace the workload (at most `concurrency` workflows under way) so the kills spread over real work.
    const active = open.filter((r) => r.status !== 'queued').length;
    const queued = open.filter((r) => r.status === 'queued').slice(0, Math.max(0, (o.concurrency ?? 40) - active));
    await Promise.all(queued.map((r) => call('POST', '/tests/start', { queue_id: r.id })));
    const pending = open.filter((r) => r.status === 'pending_approval').slice(0, 200);
    if (pending.length > 0) {
      const res = await call('POST', '/approvals/batch', {
        items: pending.map((r) => ({ id: r.id, action: 'approve', reason: 'chaos' })),
      });
      if (res.status === 200)
        for (const it of res.body.results as { id: number; ok: boolean }[]) if (it.ok) ackApproved.add(it.id);
    }
    for (const r of open.filter((x) => x.status === 'needs_attention').slice(0, 100)) {
      if (r.phase === 'prod' || r.phase === 'prod_rollback')
        await call('POST', `/queue/${r.id}/force-rollback`, { reason: 'chaos: halted wave', rollback_type: 'package' });
      else await call('POST', `/queue/${r.id}/mark-failed`, { reason: 'chaos: operator gives up' });
    }
    await sleep(100);
  }
  done = true;
  await killer;
  daemon.child.proc.kill('SIGTERM');
  await daemon.child.exited;
  served.server.close();

  // ------------------------------------------------------------------ verdict
  const details: string[] = [];
  const dups = world.duplicates();
  for (const d of dups.slice(0, 10)) details.push(`duplicate effect ${d.key} ×${d.count}`);
  let lost = 0;
  const final = await rows();
  for (const r of final) {
    const journal = await loadJournal(db, r.id);
    const broken = verifyChain(journal);
    const last = journal[journal.length - 1];
    if (broken || !last || last.to_state.split('.')[0] !== r.status) {
      lost++;
      details.push(
        `entry ${r.id}: journal ${broken ? `broken at ${broken.seq} (${broken.problem})` : `ends in ${last?.to_state} but status ${r.status}`}`,
      );
    }
    const reachedProd = journal.some((j) => (PROD_STATUSES as readonly string[]).includes(j.to_state.split('.')[0]!));
    if (reachedProd || ackApproved.has(r.id)) {
      const n = await db.oneFirst(
        sql.type(
          z.object({ n: z.number() }),
        )`SELECT count(*)::int AS n FROM patch_approvals WHERE queue_id = ${r.id} AND action = 'approved'`,
      );
      if (n !== 1) {
        lost++;
        details.push(`entry ${r.id}: ${n} approval rows (acknowledged: ${ackApproved.has(r.id)})`);
      }
    }
  }
  const reruns = await db.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM effects WHERE executions > 1`,
  );
  details.push(
    `info: effect keys run more than once by the daemon: ${reruns}; fake-world executions: ${[...world.executions.values()].reduce((a, b) => a + b, 0)}`,
  );
  const unfinished = final.filter((r) => !FINAL.includes(r.status)).length + Math.max(0, o.workflows - final.length);
  await db.end();
  return {
    kills,
    workflows: o.workflows,
    duplicates: dups.reduce((s, d) => s + d.count - 1, 0),
    lost,
    unfinished,
    seconds: Math.round((Date.now() - t0) / 1000),
    details,
  };
}
