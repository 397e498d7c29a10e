/**
 * Capture the golden corpus from today's machine: walk every model path through the real host and
 * PostgreSQL (controlled ports), and keep the committed rows of the first entry that reaches each
 * model state. Run it only when a released machine's snapshots are to be frozen:
 *
 *   node test/golden/capture.ts test/golden/v1.json
 *
 * The file is committed; `test/golden/golden.test.ts` restores every entry with the current machine.
 */
import { writeFileSync } from 'node:fs';
import { silentLogger } from '../helpers/deps.ts';
import { ControlledPorts } from '../helpers/controlledPorts.ts';
import { createMigratedDatabase, startScratchPostgres } from '../helpers/pgServer.ts';
import { seedErrata } from '../helpers/actors.ts';
import { createDb } from '../../src/persistence/db.ts';
import { startActorSystem } from '../../src/machines/system.ts';
import { FINAL_STATUSES, MACHINE_VERSION, stateLabel, statusOf } from '../../src/machines/patch.machine.ts';
import { serializeForModel } from '../model/events.ts';
import { buildPaths, runPath } from '../model/paths.ts';
import { captureEntryRows, type GoldenCorpus, type GoldenEntry } from './corpus.ts';

const out = process.argv[2];
if (!out) throw new Error('usage: node test/golden/capture.ts <out.json>');

const server = await startScratchPostgres('golden');
const db = await createDb({ url: await createMigratedDatabase(server.adminUrl, 'golden'), poolMax: 10 });
const ctl = new ControlledPorts();
const sys = await startActorSystem({
  db,
  logger: silentLogger,
  ownerId: 'golden',
  leaseTtlMs: 600_000,
  pollMs: 600_000,
  ports: ctl.ports(),
});
const entries = new Map<string, GoldenEntry>();
try {
  const { paths } = buildPaths();
  await seedErrata(
    db,
    paths.map((_, i) => `MODEL-${i}`),
  );
  for (const [i, path] of paths.entries()) {
    await runPath(sys, db, ctl, path, i, async (id, step) => {
      const modelKey = serializeForModel(step.state);
      // Final entries are never hydrated again: nothing of theirs needs to survive an upgrade.
      if (entries.has(modelKey) || FINAL_STATUSES.includes(statusOf(step.state.value))) return;
      await sys.host.flush();
      entries.set(modelKey, { label: stateLabel(step.state.value), modelKey, rows: await captureEntryRows(db, id) });
    });
  }
} finally {
  await sys.stop();
  await db.end();
  await server.stop();
}
const corpus: GoldenCorpus = {
  machineVersion: MACHINE_VERSION,
  capturedFrom: 'model paths (test/model/paths.ts)',
  entries: [...entries.values()],
};
// One entry per line: a re-capture diffs entry by entry.
const lines = corpus.entries.map((e) => JSON.stringify(e));
const head = JSON.stringify({ machineVersion: corpus.machineVersion, capturedFrom: corpus.capturedFrom });
writeFileSync(out, `${head.slice(0, -1)},"entries":[\n${lines.join(',\n')}\n]}\n`);
const labels = new Set(corpus.entries.map((e) => e.label));
process.stdout.write(`golden: entries=${corpus.entries.length} states=${labels.size} -> ${out}\n`);
