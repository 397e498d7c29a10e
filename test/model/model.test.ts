/**
 * Model-based conformance: paths generated from the machine by `xstate/graph` are executed through
 * the real actor host and PostgreSQL. Effects are "controlled ports": each effect call waits until
 * the path says how it ends (done with a given output, transient error, permanent error).
 *
 * Paths: every simple path of the happy-path alphabet, plus — for transition coverage — the
 * shortest path to every state of the full alphabet extended by each transition that leaves it.
 * After every step the live state must equal the model's; at the end the invariants hold for every
 * entry: status = state, journal contiguous and hash-chained, no production state without a passed
 * test and an approval row.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlledPorts } from '../helpers/controlledPorts.ts';
import { startActorSystem, type ActorSystem } from '../../src/machines/system.ts';
import { patchMachine, stateLabel } from '../../src/machines/patch.machine.ts';
import { checkInvariants, seedErrata } from '../helpers/actors.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { silentLogger } from '../helpers/deps.ts';
import { buildPaths, runPath } from './paths.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
const ctl = new ControlledPorts();
beforeAll(async () => {
  t = await createTestDatabase();
  sys = await startActorSystem({
    db: t.db,
    logger: silentLogger,
    ownerId: 'model',
    leaseTtlMs: 60_000,
    pollMs: 60_000,
    ports: ctl.ports(),
  });
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

describe('model-based conformance (xstate/graph paths through the real host)', () => {
  it('every generated path runs through the real host, and the invariants hold on each', async () => {
    const { paths, transitions } = buildPaths();
    expect(transitions).toBeGreaterThan(250);
    await seedErrata(
      t.db,
      paths.map((_, i) => `MODEL-${i}`),
    );
    const visitedStates = new Set<string>();
    const ids: number[] = [];
    // Many entries at once through one host: paths are independent actors.
    for (let i = 0; i < paths.length; i += 40) {
      const batch = paths.slice(i, i + 40);
      ids.push(...(await Promise.all(batch.map((p, j) => runPath(sys, t.db, ctl, p, i + j)))));
      for (const p of batch) for (const s of p.steps) visitedStates.add(stateLabel(s.state.value));
    }
    await sys.host.flush();
    for (const id of ids) await checkInvariants(t.db, id);
    // Every state of the machine (leaf labels) was reached.
    const { machineGraph } = await import('../../src/machines/graph.ts');
    const leaves = machineGraph(patchMachine)
      .nodes.filter((n, _i, all) => !all.some((c) => c.parent === n.id))
      .map((n) => n.id);
    expect(leaves.filter((l) => !visitedStates.has(l))).toEqual([]);
  }, 300_000);
});
