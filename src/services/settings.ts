/**
 * The test settings an entry is created with, from `orchestrator_config.test_thresholds` (runtime
 * tunable) over the design's defaults. A malformed row is an error that names the key and field.
 */
import { z } from 'zod';
import { DEFAULT_SETTINGS } from '../machines/host.ts';
import type { Settings } from '../machines/patch.machine.ts';
import type { Db } from '../persistence/db.ts';
import { getConfigValue } from '../persistence/sql/config.ts';

const seconds = z.number().int().min(0).max(7 * 86400);
export const thresholdsSchema = z.object({
  cpu_delta_percent: z.number().min(0).max(1000).default(20),
  memory_delta_percent: z.number().min(0).max(1000).default(15),
  max_failed_services: z.number().int().min(0).default(0),
  wait_after_patch_seconds: seconds.default(300),
  wait_after_reboot_seconds: seconds.default(180),
  reboot_timeout_seconds: seconds.default(900),
  step_timeout_seconds: seconds.min(1).default(1800),
  retry_base_seconds: seconds.min(1).default(30),
  retry_max_seconds: seconds.min(1).default(1800),
  retry_max_attempts: z.number().int().min(0).max(100).default(8),
  /** How often the engine polls UYUNI actions and hosts coming back. */
  poll_seconds: z.number().min(0.05).max(600).default(15),
  /** Rate window of the CPU query (PromQL `[Ns]`). */
  metrics_window_seconds: z.number().int().min(1).max(3600).default(300),
  /** Milliseconds override for the lab and tests (short waits); absent in production. */
  time_scale_ms: z.number().int().min(1).max(1000).optional(),
});
export type Thresholds = z.infer<typeof thresholdsSchema>;

export async function loadThresholds(db: Db): Promise<Thresholds> {
  const raw = (await getConfigValue(db, 'test_thresholds')) ?? {};
  const parsed = thresholdsSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`orchestrator_config.test_thresholds is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** Settings for a new entry. `time_scale_ms` (lab/tests) makes every "second" that many ms. */
export function settingsFrom(t: Thresholds): Settings {
  const unit = t.time_scale_ms ?? 1000;
  return {
    waitAfterPatchMs: t.wait_after_patch_seconds * unit,
    waitAfterRebootMs: t.wait_after_reboot_seconds * unit,
    rebootTimeoutMs: t.reboot_timeout_seconds * unit,
    stepTimeoutMs: t.step_timeout_seconds * unit,
    retryBaseMs: t.retry_base_seconds * unit,
    retryMaxMs: t.retry_max_seconds * unit,
    retryMaxAttempts: t.retry_max_attempts,
  };
}

export { DEFAULT_SETTINGS };
