/**
 * bench:dashboard — server time of every dashboard page with 10,000 queue entries.
 *
 * The real daemon (child process) on a scratch PostgreSQL; 10,000 errata in the cache and 10,000
 * queue entries created through the API (so every entry is a real actor with its journal). Each
 * page is fetched 20 times over loopback with a signed-in cookie; reported: p50 and p95 in ms.
 * Goal: every page under 300 ms. Last line: `bench:dashboard: entries=… pages=… max_p95_ms=…`.
 */
import { sql } from 'slonik';
import { createDb } from '../src/persistence/db.ts';
import { adminToken, api } from '../test/helpers/daemon.ts';
import { createMigratedDatabase, startScratchPostgres } from '../test/helpers/pgServer.ts';
import { freePort, startChild, waitForHttp } from '../test/helpers/proc.ts';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 10_000);
const ROUNDS = 20;
const pg = await startScratchPostgres('dashboard-bench');
const dbUrl = await createMigratedDatabase(pg.adminUrl, 'dash');
const db = await createDb({ url: dbUrl, poolMax: 2 });
const port = await freePort();
const child = startChild(['serve'], {
  DATABASE_URL: dbUrl,
  HTTP_PORT: String(port),
  LOG_LEVEL: 'warn',
  INSTANCE_ID: 'bench-ui',
  NODE_ENV: 'test',
});
const rows: { page: string; p50: number; p95: number }[] = [];
try {
  await waitForHttp(`http://127.0.0.1:${port}/api/v1/health`, 30_000, child);
  const os = ['ubuntu', 'debian', 'rhel'];
  const sev = ['Critical', 'High', 'Medium', 'Low'];
  await db.query(sql.unsafe`
    INSERT INTO errata_cache (errata_id, uyuni_errata_id, synopsis, advisory_type, severity, target_os, cves, affected_system_ids)
    SELECT 'BENCH-' || g, g, 'package ' || (g % 97) || ' security update', 'Security Advisory', (${sql.array(sev, 'text')})[1 + g % 4],
           (${sql.array(os, 'text')})[1 + g % 3], ARRAY['CVE-2026-' || (10000 + g)], '{1}'
    FROM generate_series(1, ${ENTRIES}) g`);
  const token = await adminToken(db);
  const call = api(`http://127.0.0.1:${port}/api/v1`, token);
  for (let i = 0; i < ENTRIES; i += 1000) {
    const ids = Array.from({ length: Math.min(1000, ENTRIES - i) }, (_, k) => `BENCH-${i + k + 1}`);
    const r = await call('POST', '/queue', { errata_ids: ids });
    if (r.status !== 201) throw new Error(`queue: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  }
  const some = (await call('GET', '/queue?limit=1')).body.items[0].id as number;
  // Sign in like a browser.
  const login = await fetch(`http://127.0.0.1:${port}/ui/login`, {
    method: 'POST',
    body: new URLSearchParams({ token }),
    redirect: 'manual',
  });
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const pages = [
    '/ui',
    '/ui?status=queued&sort=severity',
    '/ui?q=package%2042',
    '/ui?offset=9000',
    `/ui/entries/${some}`,
    `/ui/inspector/${some}`,
    '/ui/approvals',
    '/ui/tests',
    '/ui/deployments',
    '/ui/reports',
    '/ui/sync',
    '/ui/live/queue',
    '/ui/live/counts',
  ];
  for (const p of pages) {
    const times: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { cookie } });
      await res.text();
      if (res.status !== 200) throw new Error(`${p}: HTTP ${res.status}`);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    rows.push({ page: p, p50: times[Math.floor(ROUNDS * 0.5)]!, p95: times[Math.floor(ROUNDS * 0.95)]! });
  }
} finally {
  child.proc.kill('SIGTERM');
  await child.exited;
  await db.end();
  await pg.stop();
}
console.log('| page | p50 ms | p95 ms |');
console.log('|---|---:|---:|');
for (const r of rows) console.log(`| ${r.page} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} |`);
console.log(
  `bench:dashboard: entries=${ENTRIES} pages=${rows.length} max_p95_ms=${Math.max(...rows.map((r) => r.p95)).toFixed(1)}`,
);
