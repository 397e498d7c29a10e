/**
 * Drive an entry forward through a real host with controlled ports, as the daemon would: settle
 * the running invoke with its first (successful) sample outcome, fire the timer its state armed,
 * or send the operator event that moves it on. Used by the golden corpus and the gate's tests.
 */
import type { ActorSystem } from '../../src/machines/system.ts';
import {
  acceptedOperatorEvents,
  FINAL_STATUSES,
  timersFor,
  type EffectName,
  type PatchContext,
  type PatchSnapshot,
} from '../../src/machines/patch.machine.ts';
import { loadEntry } from '../../src/persistence/sql/entries.ts';
import type { Db } from '../../src/persistence/db.ts';
import { activeInvokes, modelEvents, OUTPUTS } from '../model/events.ts';
import type { ControlledPorts } from './controlledPorts.ts';

/** Operator events in the order the driver prefers them: forward first, then the ways out. */
const PREFERENCE = ['APPROVE', 'START_DEPLOYMENT', 'START_TEST', 'RETRY', 'REJECT', 'MARK_FAILED', 'REMOVE'];

export interface Driver {
  sys: ActorSystem;
  db: Db;
  ctl: ControlledPorts;
  /** Who sends the operator events (default 'driver'). */
  by?: string;
}

/** One step forward; returns a description of what was done. */
export async function stepForward(d: Driver, id: number, snapshot: PatchSnapshot): Promise<string> {
  const invoke = activeInvokes(snapshot)[0];
  if (invoke) {
    const output = OUTPUTS[invoke.src]?.[0];
    if (!output) throw new Error(`no sample output for ${invoke.src}`);
    await d.ctl.settle(id, invoke.src as EffectName, { output });
    return `done ${invoke.src}`;
  }
  const timer = timersFor(snapshot.value, snapshot.context as PatchContext)[0];
  if (timer) {
    await d.sys.host.send(id, { type: 'TIMER', name: timer.name }, { actor: 'scheduler' });
    return `timer ${timer.name}`;
  }
  const accepted = acceptedOperatorEvents(snapshot, d.sys.clock.now());
  const type = PREFERENCE.find((p) => (accepted as string[]).includes(p));
  if (!type) throw new Error(`stuck: no invoke, no timer, accepts only ${accepted.join(', ')}`);
  const sample = modelEvents(snapshot).find((e) => e.type === type)!;
  const { at: _at, ...event } = sample as typeof sample & { until?: number };
  const by = d.by ?? 'driver';
  await d.sys.host.send(id, { ...event, by } as never, { actor: by });
  return type;
}

/**
 * Step the entry forward until `until` holds for its live state (or it is final); at most
 * `maxSteps` steps. @returns the trail of steps taken.
 */
export async function driveUntil(
  d: Driver,
  id: number,
  until: (s: PatchSnapshot) => boolean,
  maxSteps = 80,
): Promise<string[]> {
  const trail: string[] = [];
  for (let n = 0; n < maxSteps; n++) {
    const live = d.sys.host.snapshotOf(id);
    if (live === undefined) {
      const row = await loadEntry(d.db, id);
      if (row !== null && (FINAL_STATUSES as readonly string[]).includes(row.status)) return trail;
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    if (until(live.snapshot)) return trail;
    const before = live.revision;
    trail.push(await stepForward(d, id, live.snapshot));
    for (let i = 0; i < 500; i++) {
      const now = d.sys.host.snapshotOf(id);
      if (now === undefined || now.revision !== before) break;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  throw new Error(`entry ${id}: not there after ${maxSteps} steps: ${trail.join(' → ')}`);
}
