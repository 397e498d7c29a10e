/**
 * `npm run chaos [-- --workflows 1000 --kills 200 [--no-reconcile]]`
 * Last line (machine-readable): `chaos: kills=N workflows=N duplicates=N lost=N unfinished=N`.
 */
import { parseArgs } from 'node:util';
import { createMigratedDatabase, startScratchPostgres } from '../helpers/pgServer.ts';
import { runChaos } from './harness.ts';

const { values } = parseArgs({
  options: {
    workflows: { type: 'string', default: '1000' },
    kills: { type: 'string', default: '200' },
    'no-reconcile': { type: 'boolean', default: false },
  },
});
const pgServer = await startScratchPostgres('chaos');
try {
  const dbUrl = await createMigratedDatabase(pgServer.adminUrl, 'chaos');
  const report = await runChaos({
    dbUrl,
    workflows: Number(values.workflows),
    kills: Number(values.kills),
    reconcile: !values['no-reconcile'],
    timeoutMs: 1_800_000,
    log: (l) => console.log(l),
  });
  for (const d of report.details.slice(0, 20)) console.log(`  ${d}`);
  console.log(`chaos: reconcile=${!values['no-reconcile']} seconds=${report.seconds}`);
  console.log(
    `chaos: kills=${report.kills} workflows=${report.workflows} duplicates=${report.duplicates} lost=${report.lost} unfinished=${report.unfinished}`,
  );
  process.exitCode = report.duplicates === 0 && report.lost === 0 && report.unfinished === 0 ? 0 : 1;
} finally {
  await pgServer.stop();
}
