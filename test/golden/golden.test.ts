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
import { MACHINE_VERSION } from '../../src/machines/patch.machine.ts';
import { driveUntil } from '../helpers/drive.ts';
import { ControlledPorts } from '../helpers/controlledPorts.ts';
import { checkInvariants, seedErrata } from '../helpers/actors.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { silentLogger } from '../helpers/deps.ts';
import { loadCorpus, resetSequences, restoreEntryRows, type GoldenEntry } from './corpus.ts';

const CORPORA = [new URL('./v1.json', import.meta.url)];
const MAX_STEPS = 80;

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem | undefined;
const ctl = new ControlledPorts();

async function driveToFinal(id: number): Promise<string[]> {
  return driveUntil({ sys: sys!, db: t.db, ctl, by: 'golden' }, id, () => false, MAX_STEPS);
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

    sys = await startActorSystem({
      db: t.db,
      logger: silentLogger,
      ownerId: 'upgraded',
      leaseTtlMs: 600_000,
      pollMs: 600_000,
      ports: ctl.ports(),
    });
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
  it.each(CORPORA.map((u) => [u.pathname.split('/').pop()!, u] as const))(
    '%s: every entry restores and finishes',
    async (_name, url) => {
      const corpus = loadCorpus(url);
      expect(corpus.machineVersion).toBe(MACHINE_VERSION);
      const labels = new Set(corpus.entries.map((e) => e.label));
      expect(labels.size).toBeGreaterThanOrEqual(24);
      const failures: string[] = [];
      for (const g of generations(corpus.entries)) failures.push(...(await restoreAndFinish(g)));
      expect(failures).toEqual([]);
    },
    300_000,
  );
});
