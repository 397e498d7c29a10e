/**
 * The daemon with its effects sent to a fake world over loopback: the process tests' entry point
 * (`node test/helpers/fakeWorldServe.ts`), spawned by `spawnDaemon()`. It is `spm-orchestrator
 * serve` with one difference — the engine is passed to `startDaemon` by this caller — so the
 * product's configuration has no test seam and `src/` never imports the lab for it.
 *
 * Its own settings (not the daemon's): FAKE_WORLD_URL (required), FAKE_WORLD_RECONCILE=0 (the
 * chaos harness's control run: effects skip reconciliation), FAKE_WORLD_LANES=1 (the test lanes
 * start queued entries on the configured `test_systems` themselves, as in production — the
 * replica chaos harness; without it the caller starts every test).
 */
import { loadEnv, parseConfig } from '../../src/config.ts';
import { startDaemon } from '../../src/daemon.ts';
import { createLogger } from '../../src/logger.ts';
import { fakeWorldHttpPorts } from '../../src/lab/fakeWorld.ts';
import { stopOnSignals } from '../../src/signals.ts';

const url = process.env.FAKE_WORLD_URL;
if (!url) {
  process.stderr.write('fakeWorldServe: FAKE_WORLD_URL is required\n');
  process.exit(2);
}
const reconcile = process.env.FAKE_WORLD_RECONCILE !== '0';
const lanes = process.env.FAKE_WORLD_LANES === '1';
const env = loadEnv();
delete env.FAKE_WORLD_URL;
delete env.FAKE_WORLD_RECONCILE;
delete env.FAKE_WORLD_LANES;
const config = parseConfig(env);
const logger = createLogger({ level: config.logLevel, instanceId: config.instanceId });
const daemon = await startDaemon(config, logger, {
  engine: {
    ports: fakeWorldHttpPorts(url),
    reconcile,
    lanes,
    description: `fake world at ${url}${reconcile ? '' : ' (no reconciliation)'}${lanes ? ' (test lanes start tests)' : ''}`,
  },
});
stopOnSignals(daemon, logger);
