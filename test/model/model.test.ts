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
import { getAdjacencyMap, getShortestPaths, getSimplePaths } from 'xstate/graph';
import type { AnyMachineSnapshot } from 'xstate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portsFrom, TransientError, type PatchPorts } from '../../src/machines/effects.ts';
import { startActorSystem, type ActorSystem } from '../../src/machines/system.ts';
import { patchMachine, stateLabel, type EffectName, type PatchEvent, type Settings } from '../../src/machines/patch.machine.ts';
import { checkInvariants, seedErrata } from '../helpers/actors.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { silentLogger } from '../helpers/deps.ts';
import { activeInvokes, modelEvents, serializeForModel } from './events.ts';

// Waits of a day: the scheduler never fires on its own; the paths send TIMER like the scheduler would.
const SETTINGS: Settings = {
  waitAfterPatchMs: 86_400_000, waitAfterRebootMs: 86_400_000, rebootTimeoutMs: 86_400_000, stepTimeoutMs: 86_400_000,
  retryBaseMs: 86_400_000, retryMaxMs: 86_400_000, retryMaxAttempts: 2,
};
const INPUT = { entryId: 1, errataId: 'MODEL', targetOs: 'ubuntu' as const, settings: SETTINGS };

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}
/** Effect ports whose calls end only when the test says so. */
class ControlledPorts {
  readonly pending = new Map<string, Pending>();
  ports(): PatchPorts {
    return portsFrom((name, input: { entryId: number }, signal) =>
      new Promise((resolve, reject) => {
        const k = `${input.entryId}|${name}`;
        this.pending.set(k, { resolve, reject });
        signal.addEventListener('abort', () => {
          if (this.pending.get(k)?.resolve === resolve) this.pending.delete(k);
          reject(new Error('aborted'));
        }, { once: true });
      }));
  }
  async settle(entryId: number, src: EffectName, how: { output?: unknown; error?: { message: string; transient: boolean } }): Promise<void> {
    const k = `${entryId}|${src}`;
    for (let i = 0; i < 500 && !this.pending.has(k); i++) await new Promise((r) => setTimeout(r, 10));
    const p = this.pending.get(k);
    if (!p) throw new Error(`entry ${entryId}: no pending ${src} call to settle`);
    this.pending.delete(k);
    if (how.error) p.reject(how.error.transient ? new TransientError(how.error.message) : new Error(how.error.message));
    else {
      const { at: _at, ...out } = how.output as Record<string, unknown>;
      p.resolve(out);
    }
  }
}

interface Step {
  event: PatchEvent | { type: string; output?: unknown; error?: { message: string; transient: boolean } };
  state: AnyMachineSnapshot;
}
interface ModelPath {
  name: string;
  steps: Step[];
}

function buildPaths(): { paths: ModelPath[]; transitions: number } {
  const opts = { events: modelEvents, serializeState: serializeForModel, input: INPUT } as never;
  const happy = (s: AnyMachineSnapshot) =>
    modelEvents(s).filter((e) => !e.type.startsWith('xstate.error') && !['ABORT', 'REMOVE', 'RETRY', 'FORCE_ROLLBACK', 'MARK_FAILED', 'ROLLBACK_TEST'].includes(e.type) && !(e.type === 'TIMER' && (e as { name: string }).name === 'step_timeout'));
  const simple = getSimplePaths(patchMachine, { events: happy, serializeState: (s: AnyMachineSnapshot) => JSON.stringify(s.value), input: INPUT } as never);
  const shortest = getShortestPaths(patchMachine, opts);
  const byState = new Map(shortest.map((p) => [serializeForModel(p.state), p]));
  const adj = getAdjacencyMap(patchMachine, opts) as Record<string, { state: AnyMachineSnapshot; transitions: Record<string, { event: Step['event']; state: AnyMachineSnapshot }> }>;
  const paths: ModelPath[] = simple.map((p, i) => ({ name: `simple#${i}`, steps: p.steps as unknown as Step[] }));
  let transitions = 0;
  for (const [from, node] of Object.entries(adj)) {
    const prefix = byState.get(from);
    if (!prefix) continue;
    for (const t of Object.values(node.transitions)) {
      if (serializeForModel(t.state) === from) continue; // not accepted there: no transition
      transitions++;
      paths.push({ name: `edge ${stateLabel(node.state.value)} --${t.event.type}-->`, steps: [...(prefix.steps as unknown as Step[]), { event: t.event, state: t.state }] });
    }
  }
  return { paths, transitions };
}

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
const ctl = new ControlledPorts();
beforeAll(async () => {
  t = await createTestDatabase();
  sys = await startActorSystem({ db: t.db, logger: silentLogger, ownerId: 'model', leaseTtlMs: 60_000, pollMs: 60_000, ports: ctl.ports() });
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

async function waitForValue(id: number, want: unknown, label: string): Promise<void> {
  const wanted = JSON.stringify(want);
  for (let i = 0; i < 500; i++) {
    const live = sys.host.snapshotOf(id);
    const got = live ? JSON.stringify(live.snapshot.value) : null;
    if (got === wanted) return;
    if (live === undefined) {
      // Final actors leave memory once committed: compare with the database.
      const { loadEntry } = await import('../../src/persistence/sql/entries.ts');
      const row = await loadEntry(t.db, id);
      if (row && JSON.stringify((row.snapshot as { value: unknown }).value) === wanted) return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${label}: expected ${wanted}, live state ${JSON.stringify(sys.host.snapshotOf(id)?.snapshot.value)}`);
}

async function runPath(path: ModelPath, index: number): Promise<number> {
  const errataId = `MODEL-${index}`;
  const id = await sys.host.create({ errataId, errataVersion: null, targetOs: 'ubuntu', priority: 0, successScore: 50, notes: null, settings: SETTINGS }, { actor: 'model' });
  let prev: AnyMachineSnapshot | undefined;
  for (const [n, step] of path.steps.entries()) {
    const label = `${path.name} step ${n} (${step.event.type})`;
    const ev = step.event as { type: string; output?: unknown; error?: { message: string; transient: boolean } };
    const invoke = /^xstate\.(done|error)\.actor\.(\w+)$/.exec(ev.type);
    if (ev.type === 'xstate.init') {
      // the initial state: nothing to do
    } else if (invoke) {
      const inv = prev ? activeInvokes(prev).find((i) => i.id === invoke[2]) : undefined;
      if (!inv) throw new Error(`${label}: invoke ${invoke[2]} is not active`);
      await ctl.settle(id, inv.src as EffectName, invoke[1] === 'done' ? { output: ev.output } : { error: ev.error! });
    } else {
      const { at: _at, ...rest } = ev as unknown as PatchEvent & { until?: number };
      const payload = rest.type === 'SNOOZE' ? { ...rest, until: sys.clock.now() + 86_400_000 } : rest;
      await sys.host.send(id, payload as never, { actor: 'model' });
    }
    await waitForValue(id, step.state.value, label);
    prev = step.state;
  }
  return id;
}

describe('model-based conformance (xstate/graph paths through the real host)', () => {
  it('every generated path runs through the real host, and the invariants hold on each', async () => {
    const { paths, transitions } = buildPaths();
    expect(transitions).toBeGreaterThan(250);
    await seedErrata(t.db, paths.map((_, i) => `MODEL-${i}`));
    const visitedStates = new Set<string>();
    const ids: number[] = [];
    // Many entries at once through one host: paths are independent actors.
    for (let i = 0; i < paths.length; i += 40) {
      const batch = paths.slice(i, i + 40);
      ids.push(...(await Promise.all(batch.map((p, j) => runPath(p, i + j)))));
      for (const p of batch) for (const s of p.steps) visitedStates.add(stateLabel(s.state.value));
    }
    await sys.host.flush();
    for (const id of ids) await checkInvariants(t.db, id);
    // Every state of the machine (leaf labels) was reached.
    const { machineGraph } = await import('../../src/machines/graph.ts');
    const leaves = machineGraph(patchMachine).nodes.filter((n, _i, all) => !all.some((c) => c.parent === n.id)).map((n) => n.id);
    expect(leaves.filter((l) => !visitedStates.has(l))).toEqual([]);
  }, 300_000);
});
