/**
 * `npm run bench:sync` — the UYUNI sync against the lab at 20 ms per call (a table, not a test):
 * the seed-scale and large fleets; wall time, calls by method, the lower bound (calls on the
 * critical path × latency ÷ workers), the ratio to it, the same sync done the seed's old way
 * (sequential, one login and logout per call, one INSERT per errata) on the same lab, and the calls
 * of a second sync with no changes.
 * `--quick` skips the old way on the large fleet (it takes minutes by design).
 * Last line: `bench:sync: large_wall_s=… ratio_to_lower_bound=… speedup_vs_old=… resync_calls_ratio=…`
 */
import { pino } from 'pino';
import { sql } from 'slonik';
import xmlrpc from 'xmlrpc';

import { spawn } from 'node:child_process';
import { createDb } from '../src/persistence/db.ts';
import { osFromGroup, UyuniSync } from '../src/services/uyuni/sync.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { createMigratedDatabase, startScratchPostgres } from '../test/helpers/pgServer.ts';

const LATENCY = 20;
const WORKERS = 10;
const logger = pino({ level: 'silent' });

/** The seed's original way: every call its own login/logout, sequential, one INSERT per errata. */
async function oldWay(url: string, dbUrl: string, prefixes: string[]): Promise<{ seconds: number; calls: number }> {
  const u = new URL(`${url}/rpc/api`);
  const client = xmlrpc.createClient({ host: u.hostname, port: Number(u.port), path: u.pathname });
  let calls = 0;
  const raw = (m: string, p: unknown[]) =>
    new Promise<any>((res, rej) => {
      calls++;
      client.methodCall(m, p, (e, v) => (e ? rej(e) : res(v)));
    });
  const call = async (m: string, ...p: unknown[]) => {
    const key = await raw('auth.login', ['admin', 'admin']);
    try {
      return await raw(m, [key, ...p]);
    } finally {
      await raw('auth.logout', [key]);
    }
  };
  const db = await createDb({ url: dbUrl, poolMax: 2 });
  const t0 = performance.now();
  const groups = ((await call('systemgroup.listAllGroups')) as { name: string }[]).filter((g) =>
    prefixes.some((p) => g.name.startsWith(p)),
  );
  const seen = new Map<string, { name: string; type: string; os: string }>();
  for (const g of groups) {
    for (const s of (await call('systemgroup.listSystemsMinimal', g.name)) as { id: number }[]) {
      for (const e of (await call('system.getRelevantErrata', s.id)) as {
        advisory_name: string;
        advisory_type: string;
      }[]) {
        if (!seen.has(e.advisory_name))
          seen.set(e.advisory_name, {
            name: e.advisory_name,
            type: e.advisory_type,
            os: osFromGroup(g.name) ?? 'ubuntu',
          });
      }
    }
  }
  for (const e of seen.values()) {
    const cves = e.type === 'Security Advisory' ? ((await call('errata.listCves', e.name)) as string[]) : [];
    await db.query(sql.unsafe`INSERT INTO errata_cache (errata_id, advisory_type, target_os, cves) VALUES (${e.name}, ${e.type}, ${e.os}, ${sql.array(cves, 'text')})
      ON CONFLICT (errata_id) DO UPDATE SET cves = excluded.cves`);
  }
  const seconds = (performance.now() - t0) / 1000;
  await db.end();
  return { seconds, calls };
}

interface Row {
  fleet: string;
  wall: number;
  calls: Record<string, number>;
  lowerBound: number;
  old: { seconds: number; calls: number } | null;
  resyncCalls: number;
}

/** The lab UYUNI in its own process: its XML work must not share this process's single thread. */
async function startLab(fleet: 'seed' | 'large'): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, ['src/lab/uyuniServe.ts', '--fleet', fleet, '--latency-ms', String(LATENCY)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /lab-uyuni: (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`lab UYUNI exited (${code})`)));
  });
  return { url, stop: () => child.kill('SIGTERM') };
}

async function measure(
  name: string,
  fleet: 'seed' | 'large',
  adminUrl: string,
  prefixes: string[],
  runOld: boolean,
): Promise<Row> {
  const lab = await startLab(fleet);
  const url = lab.url;
  const db = await createDb({ url: await createMigratedDatabase(adminUrl, 'benchsync'), poolMax: 10 });
  const uyuni = new UyuniClient({
    url,
    user: 'admin',
    password: 'admin',
    verifySsl: true,
    timeoutMs: 30_000,
    syncWorkers: WORKERS,
  });
  const sync = new UyuniSync({ db, logger, uyuni, prefixes });
  const first = await sync.run('api');
  if (first.status !== 'completed') throw new Error(`sync failed: ${first.error}`);
  const second = await sync.run('api');
  const c = first.calls;
  // Critical path: login, listAllGroups, then each fan-out in rounds of WORKERS, then logout.
  const rounds = (n: number | undefined) => Math.ceil((n ?? 0) / WORKERS);
  const lowerBound =
    (LATENCY *
      (3 +
        rounds(c['systemgroup.listSystemsMinimal']) +
        rounds(c['system.getRelevantErrata']) +
        rounds(c['errata.listCves']))) /
    1000;
  const old = runOld ? await oldWay(url, await createMigratedDatabase(adminUrl, 'benchold'), prefixes) : null;
  await db.end();
  lab.stop();
  const total = (x: Record<string, number>) => Object.values(x).reduce((a, b) => a + b, 0);
  return {
    fleet: name,
    wall: first.durationMs / 1000,
    calls: c,
    lowerBound,
    old,
    resyncCalls: total(second.calls) / total(c),
  };
}

const quick = process.argv.includes('--quick');
const pgServer = await startScratchPostgres('benchsync');
try {
  const rows = [
    await measure('seed (2 groups, 2 systems, 634 errata)', 'seed', pgServer.adminUrl, ['test-'], true),
    await measure(
      'large (50 groups, 2,000 systems, 5,000 errata)',
      'large',
      pgServer.adminUrl,
      ['test-', 'prod-'],
      !quick,
    ),
  ];
  for (const r of rows) {
    console.log(`\n${r.fleet}`);
    console.log(`  wall time                ${r.wall.toFixed(2)} s`);
    console.log(
      `  calls by method          ${Object.entries(r.calls)
        .map(([m, n]) => `${m}=${n}`)
        .join(' ')}`,
    );
    console.log(
      `  lower bound              ${r.lowerBound.toFixed(2)} s   (critical-path calls × ${LATENCY} ms ÷ ${WORKERS} workers)`,
    );
    console.log(`  ratio to lower bound     ${(r.wall / r.lowerBound).toFixed(2)}`);
    console.log(
      `  old way (sequential)     ${r.old ? `${r.old.seconds.toFixed(1)} s, ${r.old.calls} calls, speedup ${(r.old.seconds / r.wall).toFixed(1)}×` : 'skipped (--quick)'}`,
    );
    console.log(`  re-sync calls ÷ first    ${r.resyncCalls.toFixed(3)}`);
  }
  const large = rows[1]!;
  console.log(
    `bench:sync: large_wall_s=${large.wall.toFixed(2)} ratio_to_lower_bound=${(large.wall / large.lowerBound).toFixed(2)} speedup_vs_old=${large.old ? (large.old.seconds / large.wall).toFixed(1) : 'n/a'} resync_calls_ratio=${large.resyncCalls.toFixed(3)}`,
  );
} finally {
  await pgServer.stop();
}
