/**
 * Paths generated from the machine by `xstate/graph`, and a runner that walks one through the real
 * actor host with controlled ports. Shared by the model-based conformance test and the golden
 * corpus capture (`test/golden/capture.ts`).
 */
import { getAdjacencyMap, getShortestPaths, getSimplePaths } from 'xstate/graph';
import type { AnyMachineSnapshot } from 'xstate';
import type { ActorSystem } from '../../src/machines/system.ts';
import type { Db } from '../../src/persistence/db.ts';
import {
  patchMachine,
  stateLabel,
  type EffectName,
  type PatchEvent,
  type Settings,
} from '../../src/machines/patch.machine.ts';
import { loadEntry } from '../../src/persistence/sql/entries.ts';
import type { ControlledPorts } from '../helpers/controlledPorts.ts';
import { activeInvokes, modelEvents, serializeForModel } from './events.ts';

/** Waits of a day: the scheduler never fires on its own; the paths send TIMER like the scheduler would. */
export const MODEL_SETTINGS: Settings = {
  waitAfterPatchMs: 86_400_000,
  waitAfterRebootMs: 86_400_000,
  rebootTimeoutMs: 86_400_000,
  stepTimeoutMs: 86_400_000,
  retryBaseMs: 86_400_000,
  retryMaxMs: 86_400_000,
  retryMaxAttempts: 2,
};
const INPUT = { entryId: 1, errataId: 'MODEL', targetOs: 'ubuntu' as const, settings: MODEL_SETTINGS };

export interface Step {
  event: PatchEvent | { type: string; output?: unknown; error?: { message: string; transient: boolean } };
  state: AnyMachineSnapshot;
}
export interface ModelPath {
  name: string;
  steps: Step[];
}

/**
 * Every simple path of the happy-path alphabet, plus — for transition coverage — the shortest path
 * to every state of the full alphabet extended by each transition that leaves it.
 */
export function buildPaths(): { paths: ModelPath[]; transitions: number } {
  const opts = { events: modelEvents, serializeState: serializeForModel, input: INPUT } as never;
  const excluded = ['ABORT', 'REMOVE', 'RETRY', 'FORCE_ROLLBACK', 'MARK_FAILED', 'ROLLBACK_TEST'];
  const happy = (s: AnyMachineSnapshot) =>
    modelEvents(s).filter(
      (e) =>
        !e.type.startsWith('xstate.error') &&
        !excluded.includes(e.type) &&
        !(e.type === 'TIMER' && (e as { name: string }).name === 'step_timeout'),
    );
  const simple = getSimplePaths(patchMachine, {
    events: happy,
    serializeState: (s: AnyMachineSnapshot) => JSON.stringify(s.value),
    input: INPUT,
  } as never);
  const shortest = getShortestPaths(patchMachine, opts);
  const byState = new Map(shortest.map((p) => [serializeForModel(p.state), p]));
  type Node = {
    state: AnyMachineSnapshot;
    transitions: Record<string, { event: Step['event']; state: AnyMachineSnapshot }>;
  };
  const adj = getAdjacencyMap(patchMachine, opts) as Record<string, Node>;
  const paths: ModelPath[] = simple.map((p, i) => ({ name: `simple#${i}`, steps: p.steps as unknown as Step[] }));
  let transitions = 0;
  for (const [from, node] of Object.entries(adj)) {
    const prefix = byState.get(from);
    if (!prefix) continue;
    for (const t of Object.values(node.transitions)) {
      if (serializeForModel(t.state) === from) continue; // not accepted there: no transition
      transitions++;
      paths.push({
        name: `edge ${stateLabel(node.state.value)} --${t.event.type}-->`,
        steps: [...(prefix.steps as unknown as Step[]), { event: t.event, state: t.state }],
      });
    }
  }
  return { paths, transitions };
}

/** Wait until the entry's live (or, once final and released, persisted) state value is `want`. */
export async function waitForValue(sys: ActorSystem, db: Db, id: number, want: unknown, label: string): Promise<void> {
  const wanted = JSON.stringify(want);
  for (let i = 0; i < 500; i++) {
    const live = sys.host.snapshotOf(id);
    const got = live ? JSON.stringify(live.snapshot.value) : null;
    if (got === wanted) return;
    if (live === undefined) {
      // Final actors leave memory once committed: compare with the database.
      const row = await loadEntry(db, id);
      if (row && JSON.stringify((row.snapshot as { value: unknown }).value) === wanted) return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const live = JSON.stringify(sys.host.snapshotOf(id)?.snapshot.value);
  throw new Error(`${label}: expected ${wanted}, live state ${live}`);
}

/**
 * Walk one path: create an entry, then per step settle the invoke, send the event or fire the timer
 * the path names, and wait for the state the path predicts. `afterStep` sees every state reached.
 */
export async function runPath(
  sys: ActorSystem,
  db: Db,
  ctl: ControlledPorts,
  path: ModelPath,
  index: number,
  afterStep?: (id: number, step: Step) => Promise<void>,
): Promise<number> {
  const errataId = `MODEL-${index}`;
  const id = await sys.host.create(
    {
      errataId,
      errataVersion: null,
      targetOs: 'ubuntu',
      priority: 0,
      successScore: 50,
      notes: null,
      settings: MODEL_SETTINGS,
    },
    { actor: 'model' },
  );
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
      await ctl
        .settle(id, inv.src as EffectName, invoke[1] === 'done' ? { output: ev.output } : { error: ev.error! })
        .catch((err: Error) => {
          throw new Error(`${label}: ${err.message}`);
        });
    } else {
      const { at: _at, ...rest } = ev as unknown as PatchEvent & { until?: number };
      const payload = rest.type === 'SNOOZE' ? { ...rest, until: sys.clock.now() + 86_400_000 } : rest;
      await sys.host.send(id, payload as never, { actor: 'model' });
    }
    await waitForValue(sys, db, id, step.state.value, label);
    await afterStep?.(id, step);
    prev = step.state;
  }
  return id;
}
