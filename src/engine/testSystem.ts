/**
 * The test system an effect works on: which one (its UYUNI id), what its baseline recorded, and
 * waiting for it to come back after a reboot. Shared by the test phases and the test rollback.
 */
import type { EffectInput } from '../machines/patch.machine.ts';
import { getTestBaseline } from '../persistence/sql/testResults.ts';
import type { Evidence } from '../services/judge.ts';
import type { EngineDeps } from './deps.ts';
import { systemIdOf } from './errata.ts';
import { sleep } from './timing.ts';
import { awaitActions } from './uyuniActions.ts';
import type { BaselineWindow, SampledWindow } from './windows.ts';

/** `patch_tests.baseline_metrics` / `post_patch_metrics`: the live evidence and, with Prometheus, the window. */
export type StoredEvidence = Evidence & { window?: BaselineWindow | SampledWindow | null };

/** The entry's test system with its UYUNI id. */
export async function testSystemOf(e: EngineDeps, input: EffectInput): Promise<{ id: number; name: string }> {
  if (!input.testSystem) throw new Error('no test system assigned to this entry');
  return { id: await systemIdOf(e.db, input.testSystem.name, input.testSystem.id), name: input.testSystem.name };
}

/** What the baseline recorded for this attempt: its evidence and the package versions before the patch. */
export async function storedBaseline(
  e: EngineDeps,
  input: EffectInput,
): Promise<{ evidence: StoredEvidence | null; packages: Record<string, string> | null }> {
  const r = await getTestBaseline(e.db, input.entryId, input.attempt);
  return {
    evidence: (r?.baseline_metrics as StoredEvidence | null) ?? null,
    packages: (r?.package_versions_before as Record<string, string> | null) ?? null,
  };
}

/** Wait for the reboot action (when there is one) and until the host answers Salt again. */
export async function waitForHost(
  e: EngineDeps,
  sys: { id: number; name: string },
  actionId: number | null,
  pollMs: number,
  signal: AbortSignal,
): Promise<void> {
  if (actionId !== null) {
    const r = (await awaitActions(e, [actionId], [sys.id], pollMs, signal)).get(sys.id)!;
    if (!r.ok) throw new Error(`reboot of ${sys.name} failed in UYUNI: ${r.message}`);
  }
  for (;;) {
    const ping = await e.salt
      .local<boolean>([sys.name], 'test.ping')
      .catch(() => ({ returned: {} as Record<string, boolean>, missing: [sys.name] }));
    if (ping.returned[sys.name] === true) return;
    await sleep(pollMs, signal);
  }
}
