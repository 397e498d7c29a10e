/**
 * `npm run chaos:db [-- --workflows 500 --cuts 200 --seed 1 [--concurrency 40] [--blackhole-grace-ms 30000]]`
 * The daemon's PostgreSQL connections go through a proxy that resets, stalls and blackholes them
 * and drops COMMIT acknowledgements (test/chaos/dbProxy.ts, dbHarness.ts).
 * Last line (machine-readable): `chaos-db: cuts=N workflows=N duplicates=N lost=N unfinished=N db_failures=N`;
 * exit code 1 when the goal (duplicates=0 lost=0 unfinished=0 db_failures=0) is missed, or when the
 * daemon never noticed a blackholed connection or exited on its own (both reported above it).
 */
import { daemonSource, parseWeights } from './cli.ts';
import { parseArgs } from 'node:util';
import { createMigratedDatabase, startScratchPostgres } from '../helpers/pgServer.ts';
import { goalMet, lastLine, runChaosDb } from './dbHarness.ts';
import { CUT_KINDS } from './dbProxy.ts';

const { values } = parseArgs({
  options: {
    workflows: { type: 'string', default: '500' },
    cuts: { type: 'string', default: '200' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '40' },
    'blackhole-grace-ms': { type: 'string', default: '30000' },
    'timeout-minutes': { type: 'string', default: '40' },
    /** e.g. `reset=3,stall=2,commit_ack=2` (default: dbProxy.ts DEFAULT_WEIGHTS). */
    weights: { type: 'string' },
  },
});
const weights = parseWeights(values.weights, CUT_KINDS);
console.log(`chaos-db: ${daemonSource()}`);
const pgServer = await startScratchPostgres('chaos-db');
try {
  const dbUrl = await createMigratedDatabase(pgServer.adminUrl, 'chaos_db');
  const report = await runChaosDb({
    dbUrl,
    workflows: Number(values.workflows),
    cuts: Number(values.cuts),
    seed: Number(values.seed),
    concurrency: Number(values.concurrency),
    blackholeGraceMs: Number(values['blackhole-grace-ms']),
    timeoutMs: Number(values['timeout-minutes']) * 60_000,
    ...(weights ? { weights } : {}),
    log: (l) => console.log(l),
  });
  const problems = report.details.filter((d) => !d.startsWith('info:'));
  for (const d of [...problems.slice(0, 40), ...report.details.filter((d) => d.startsWith('info:')).slice(0, 40)])
    console.log(`  ${d}`);
  if (problems.length > 40) console.log(`  … ${problems.length - 40} more`);
  console.log(
    `chaos-db: seed=${values.seed} seconds=${report.seconds} unnoticed_blackholes=${report.unnoticedBlackholes} daemon_exits=${report.daemonExits} http_500=${report.http500} false_503=${report.false503}`,
  );
  console.log(lastLine(report));
  // The goal, and two things it does not count but a healthy daemon never shows: a blackholed
  // connection it never noticed (the proxy closed it), and an exit of its own.
  process.exitCode = goalMet(report) && report.unnoticedBlackholes === 0 && report.daemonExits === 0 ? 0 : 1;
} finally {
  await pgServer.stop();
}
