/**
 * `npm run chaos:replicas [-- --workflows 300 --faults 100 --seed 1 [--lease-ttl 4] [--test-systems 4] [--drain-seconds 120] [--weights kill=4,stop=3,term=3] [--rollback-test]]`
 * Three replicas over one PostgreSQL and one fake world; kill -9, SIGSTOP for 2 × the lease TTL,
 * SIGTERM and restart at random; operator events round-robin to every replica
 * (test/chaos/replicasHarness.ts). Last line (machine-readable):
 * `chaos-replicas: replicas=3 faults=N workflows=N duplicates=N lost=N unfinished=N stale_rejected=N lane_overlaps=N`;
 * exit code 1 unless duplicates=0 lost=0 unfinished=0 lane_overlaps=0 and stale_rejected>0.
 */
import { daemonSource, parseWeights } from './cli.ts';
import { parseArgs } from 'node:util';
import { createMigratedDatabase, startScratchPostgres } from '../helpers/pgServer.ts';
import { FAULT_KINDS, goalMet, lastLine, runChaosReplicas } from './replicasHarness.ts';

const { values } = parseArgs({
  options: {
    workflows: { type: 'string', default: '300' },
    faults: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    replicas: { type: 'string', default: '3' },
    'lease-ttl': { type: 'string', default: '4' },
    'test-systems': { type: 'string', default: '4' },
    'drain-seconds': { type: 'string', default: '120' },
    'timeout-minutes': { type: 'string', default: '40' },
    weights: { type: 'string' },
    'rollback-test': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'warn' },
  },
});
const weights = parseWeights(values.weights, FAULT_KINDS);
console.log(`chaos-replicas: ${daemonSource()}`);
const pgServer = await startScratchPostgres('chaos-replicas');
try {
  const dbUrl = await createMigratedDatabase(pgServer.adminUrl, 'chaos_replicas');
  const report = await runChaosReplicas({
    dbUrl,
    workflows: Number(values.workflows),
    faults: Number(values.faults),
    seed: Number(values.seed),
    replicas: Number(values.replicas),
    leaseTtlSeconds: Number(values['lease-ttl']),
    testSystems: Number(values['test-systems']),
    drainMs: Number(values['drain-seconds']) * 1000,
    timeoutMs: Number(values['timeout-minutes']) * 60_000,
    ...(weights ? { weights } : {}),
    rollbackTest: values['rollback-test'],
    logLevel: values['log-level'],
    log: (l) => console.log(l),
  });
  const problems = report.details.filter((d) => !d.startsWith('info:'));
  for (const d of [...problems.slice(0, 40), ...report.details.filter((d) => d.startsWith('info:'))])
    console.log(`  ${d}`);
  if (problems.length > 40) console.log(`  … ${problems.length - 40} more`);
  console.log(
    `chaos-replicas: seed=${values.seed} seconds=${report.seconds} faults_by_kind=${JSON.stringify(report.byKind)} other_problems=${report.otherProblems}`,
  );
  console.log(lastLine(report));
  process.exitCode = goalMet(report) ? 0 : 1;
} finally {
  await pgServer.stop();
}
// Nothing of the run may keep the process alive (a daemon's pipes, a keep-alive socket).
process.exit();
