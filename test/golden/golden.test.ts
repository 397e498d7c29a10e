/**
 * Upgrade safety (the catalogue's T10): every entry of the golden corpus — persisted by a released
 * machine, one in every state and sub-state, timers armed — is restored by the current machine and
 * driven to a final state. A machine change that breaks this bumps `MACHINE_VERSION` and ships a
 * migration of the persisted snapshot, tested here on the corpus.
 *
 * The driver moves each entry forward as the daemon would: it settles the invoke that is running
 * with its first (successful) outcome, fires the timer the state armed, or sends the operator event
 * that moves it on (approve, deploy, start a test, retry, else reject / mark failed / remove).
 */
import { describe, expect, it } from 'vitest';
import { sql } from 'slonik';
import { z } from 'zod';
import { startActorSystem, type ActorSystem } from '../../src/machines/system.ts';
import {
  acceptedOperatorEvents, FINAL_STATUSES, MACHINE_VERSION, timersFor, type EffectName, type PatchContext, type PatchSnapshot,
} from '../../src/machines/patch.machine.ts';
import { loadEntry } from '../../src/persistence/sql/entries.ts';
import { ControlledPorts } from '../helpers/controlledPorts.ts';
import { checkInvariants, seedErrata } from '../helpers/actors.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { silentLogger } from '../helpers/deps.ts';
import { activeInvokes, modelEvents, OUTPUTS } from '../model/events.ts';
import { loadCorpus, resetSequences, restoreEntryRows, type GoldenEntry } from './corpus.ts';

const CORPORA = [new URL('./v1.json', import.meta.url)];
/** Operator events in the order the driver prefers them: forward first, then the ways out. */
const PREFERENCE = ['APPROVE', 'START_DEPLOYMENT', 'START_TEST', 'RETRY', 'REJECT', 'MARK_FAILED', 'REMOVE'];
const MAX_STEPS = 80;

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem | undefined;
const ctl = new ControlledPorts();

async function isFinal(id: number): Promise<boolean> {
  const row = await loadEntry(t.db, id);
  return row !== null && (FINAL_STATUSES as readonly string[]).includes(row.status);
}

/** One step forward; returns a description of what was done. */
async function stepForward(id: number, snapshot: PatchSnapshot): Promise<string> {
  const invoke = activeInvokes(snapshot)[0];
  if (invoke) {
    const output = OUTPUTS[invoke.src]?.[0];
    if (!output) throw new Error(`no sample output for ${invoke.src}`);
    await ctl.settle(id, invoke.src as EffectName, { output });
    return `done ${invoke.src}`;
  }
  const timer = timersFor(snapshot.value, snapshot.context as PatchContext)[0];
  if (timer) {
    await sys!.host.send(id, { type: 'TIMER', name: timer.name }, { actor: 'golden' });
    return `timer ${timer.name}`;
  }
  const accepted = acceptedOperatorEvents(snapshot, sys!.clock.now());
  const type = PREFERENCE.find((p) => (accepted as string[]).includes(p));
  if (!type) throw new Error(`stuck: no invoke, no timer, accepts only ${accepted.join(', ')}`);
  const sample = modelEvents(snapshot).find((e) => e.type === type)!;
  const { at: _at, ...event } = sample as typeof sample & { until?: number };
  await sys!.host.send(id, event as never, { actor: 'golden' });
  return type;
}

async function driveToFinal(id: number): Promise<string[]> {
  const trail: string[] = [];
  for (let n = 0; n < MAX_STEPS; n++) {
    const live = sys!.host.snapshotOf(id);
    if (live === undefined) {
      if (await isFinal(id)) return trail;
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    const before = live.revision;
    trail.push(await stepForward(id, live.snapshot));
    for (let i = 0; i < 500; i++) {
      const now = sys!.host.snapshotOf(id);
      if (now === undefined || now.revision !== before) break;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  throw new Error(`entry ${id} not final after ${MAX_STEPS} steps: ${trail.join(' → ')}`);
}

/**
 * Entries captured from one model path share their id (one entry passes through many states), so
 * the corpus is restored in generations of distinct ids, each into a fresh database, as it was.
 */
function generations(entries: GoldenEntry[]): GoldenEntry[][] {
  const out: { ids: Set<number>; entries: GoldenEntry[] }[] = [];
  for (const e of entries) {
    const id = Number(e.rows.patch_test_queue[0]!.id);
    let g = out.find((x) => !x.ids.has(id));
    if (!g) out.push((g = { ids: new Set(), entries: [] }));
    g.ids.add(id);
    g.entries.push(e);
  }
  return out.map((g) => g.entries);
}

async function restoreAndFinish(entries: GoldenEntry[]): Promise<string[]> {
  t = await createTestDatabase();
  try {
    const errata = [...new Set(entries.map((e) => String(e.rows.patch_test_queue[0]!.errata_id)))];
    await seedErrata(t.db, errata);
    for (const e of entries) await restoreEntryRows(t.db, e.rows);
    await resetSequences(t.db);
    const ids = entries.map((e) => Number(e.rows.patch_test_queue[0]!.id));

    sys = await startActorSystem({ db: t.db, logger: silentLogger, ownerId: 'upgraded', leaseTtlMs: 600_000, pollMs: 600_000, ports: ctl.ports() });
    expect(sys.hydration).toEqual({ hydrated: entries.length, quarantined: 0 });
    const failures: string[] = [];
    await Promise.all(
      entries.map(async (e, i) => {
        try {
          await driveToFinal(ids[i]!);
        } catch (raw) {
          failures.push(`${e.label} (entry ${ids[i]}): ${(raw as Error).message}`);
        }
      }),
    );
    await sys.host.flush();
    for (const id of ids) await checkInvariants(t.db, id);
    const open = await t.db.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM patch_test_queue WHERE status NOT IN ('completed', 'rejected', 'rolled_back', 'removed')`);
    if (open !== 0 && failures.length === 0) failures.push(`${open} entries left open`);
    return failures;
  } finally {
    await sys?.stop();
    sys = undefined;
    await t.drop();
  }
}

describe('golden corpus: snapshots persisted by released machines', () => {
  it.each(CORPORA.map((u) => [u.pathname.split('/').pop()!, u] as const))('%s: every entry restores and finishes', async (_name, url) => {
    const corpus = loadCorpus(url);
    expect(corpus.machineVersion).toBe(MACHINE_VERSION);
    const labels = new Set(corpus.entries.map((e) => e.label));
    expect(labels.size).toBeGreaterThanOrEqual(24);
    const failures: string[] = [];
    for (const g of generations(corpus.entries)) failures.push(...(await restoreAndFinish(g)));
    expect(failures).toEqual([]);
  }, 300_000);
});
