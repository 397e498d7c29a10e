/**
 * `npm run fuzz [-- --per-route 2000 --seed N --only REGEX]`: the API and dashboard fuzzer (T13)
 * against a real daemon on a scratch database (TEST_DATABASE_ADMIN_URL, or an embedded PostgreSQL).
 * Last line (machine-readable): `fuzz: routes=N requests=N status_5xx=N state_changes=N`; exit 1
 * unless both are 0 (and every request was answered).
 */
import { parseArgs } from 'node:util';
import { createMigratedDatabase, startScratchPostgres } from '../helpers/pgServer.ts';
import { runFuzz } from './harness.ts';

const { values } = parseArgs({
  options: { 'per-route': { type: 'string', default: '2000' }, seed: { type: 'string' }, only: { type: 'string' } },
});
const stop = new AbortController();
// Ctrl-C / SIGTERM: finish the current route, then stop the daemon and the database.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort());
const pgServer = await startScratchPostgres('fuzz');
let exit = 1;
try {
  const dbUrl = await createMigratedDatabase(pgServer.adminUrl, 'fuzz');
  const report = await runFuzz({
    dbUrl,
    perRoute: Number(values['per-route']),
    ...(values.seed ? { seed: Number(values.seed) } : {}),
    ...(values.only ? { only: new RegExp(values.only) } : {}),
    signal: stop.signal,
    log: (l) => console.log(l),
  });
  for (const d of report.drift) console.log(`fuzz: route table drift: ${d}`);
  for (const f of report.findings.slice(0, 40))
    console.log(`  ${f.kind} ${f.status} ${f.route}: ${f.request}\n      ${f.detail}`);
  console.log(
    `fuzz: statuses ${JSON.stringify(report.byStatus)} seconds=${report.seconds} no_answer=${report.noAnswer} resent=${report.resent}`,
  );
  console.log(
    `fuzz: routes=${report.routes} requests=${report.requests} status_5xx=${report.status5xx} state_changes=${report.stateChanges}`,
  );
  exit =
    report.status5xx === 0 && report.stateChanges === 0 && report.noAnswer === 0 && report.drift.length === 0 ? 0 : 1;
} finally {
  await pgServer.stop();
}
process.exitCode = exit;
