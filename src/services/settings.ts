/**
 * Runtime configuration: every `orchestrator_config` row the daemon reads, its schema (with the
 * design's defaults) and its loader. Rows are read at each use, so an operator's change applies to
 * the next step; a malformed row is an error that names the key and the field.
 */
import { z } from 'zod';
import type { Settings } from '../machines/patch.machine.ts';
import type { Db } from '../persistence/db.ts';
import { getConfigValue } from '../persistence/sql/config.ts';
import { DEFAULT_CANARY_POLICY, defaultCanaryMetrics, type CanaryMetric, type CanaryPolicy } from './judge/canary.ts';
import { scoreWeightsSchema, type ScoreWeights } from './score.ts';
import { ianaTimeZone, maintenanceWindowsSchema, type MaintenanceWindows } from './windows.ts';

/**
 * A runtime setting from `orchestrator_config`, validated; a bad row is an error naming key and field.
 * @example
 * const policy = await configValue(db, 'rollout_policy', rolloutPolicySchema);
 */
export async function configValue<T extends z.ZodType>(
  db: Db,
  key: string,
  schema: T,
  fallback: unknown = {},
): Promise<z.infer<T>> {
  const parsed = schema.safeParse((await getConfigValue(db, key)) ?? fallback);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new Error(`orchestrator_config.${key} is invalid: ${issues}`);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// test_thresholds: the test settings an entry is created with, and the engine's polling.

const seconds = z
  .number()
  .int()
  .min(0)
  .max(7 * 86400);
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

/** @example const t = await loadThresholds(db); */
export const loadThresholds = (db: Db): Promise<Thresholds> => configValue(db, 'test_thresholds', thresholdsSchema);

/**
 * Settings for a new entry. `time_scale_ms` (lab/tests) makes every "second" that many ms.
 * @example settingsFrom(await loadThresholds(db)).waitAfterPatchMs // 300_000 by default
 */
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

/**
 * The design's defaults (waits 300 s / 180 s), from the schema's own defaults so the numbers are
 * stated once; `test_thresholds` in the database overrides them.
 * @example DEFAULT_SETTINGS.waitAfterRebootMs // 180_000
 */
export const DEFAULT_SETTINGS: Settings = settingsFrom(thresholdsSchema.parse({}));

// ---------------------------------------------------------------------------------------------
// Production and the test systems.

export const rolloutPolicySchema = z.object({
  canary_systems: z.number().int().min(0).max(1000).default(1),
  wave_percentages: z.array(z.number().min(1).max(100)).min(1).default([25, 50, 100]),
  max_failed_systems: z.number().int().min(0).default(1),
  max_failed_percent: z.number().min(0).max(100).default(5),
  min_window_remaining_minutes: z.number().min(0).max(1440).default(30),
});
export type RolloutPolicy = z.infer<typeof rolloutPolicySchema>;
export const criticalServicesSchema = z.record(z.string(), z.array(z.string().min(1)));
export const testSystemsSchema = z.partialRecord(
  z.enum(['ubuntu', 'debian', 'rhel']),
  z.array(z.object({ system_id: z.number().int().nullable(), system_name: z.string().min(1) })),
);
export const clmSchema = z.object({
  project_label: z.string().min(1).nullable().default(null),
  test_environment: z.string().default('test'),
  prod_environment: z.string().default('prod'),
});

/** @example const { canary_systems } = await loadRolloutPolicy(db); */
export const loadRolloutPolicy = (db: Db) => configValue(db, 'rollout_policy', rolloutPolicySchema);
/** @example (await loadCriticalServices(db)).ubuntu // ['ssh', 'nginx'] */
export const loadCriticalServices = (db: Db) => configValue(db, 'critical_services', criticalServicesSchema);
/** @example windowsFor(await loadMaintenanceWindows(db), 'prod-web') */
export const loadMaintenanceWindows = (db: Db): Promise<MaintenanceWindows> =>
  configValue(db, 'maintenance_windows', maintenanceWindowsSchema);
/** @example (await loadTestSystems(db)).rhel?.[0]?.system_name */
export const loadTestSystems = (db: Db) => configValue(db, 'test_systems', testSystemsSchema);
/** @example (await loadClm(db)).project_label // null: no CLM promotion */
export const loadClm = (db: Db) => configValue(db, 'clm', clmSchema);

// ---------------------------------------------------------------------------------------------
// Notifications, the auto-queue and the success score.

export const notificationConfigSchema = z.object({
  email_enabled: z.boolean().default(true),
  recipients: z.array(z.string().email()).default([]),
  webhook_enabled: z.boolean().default(false),
  webhook_url: z.union([z.string().url(), z.literal('')]).default(''),
  digest_time: z
    .string()
    .regex(/^([01]\d|2[0-3]):[0-5]\d$/)
    .default('08:00'),
  digest_enabled: z.boolean().default(true),
  digest_timezone: ianaTimeZone.default('UTC'),
  smtp_server: z.string().optional(),
});
/** @example (await loadNotificationConfig(db)).recipients */
export const loadNotificationConfig = (db: Db) => configValue(db, 'notification_config', notificationConfigSchema);

export const autoQueuePolicySchema = z.object({
  enabled: z.boolean().default(true),
  advisory_types: z
    .array(z.enum(['Security Advisory', 'Bug Fix Advisory', 'Product Enhancement Advisory']))
    .default(['Security Advisory']),
  requeue_new_versions: z.boolean().default(true),
});
/** @example if ((await loadAutoQueuePolicy(db)).enabled) { … } */
export const loadAutoQueuePolicy = (db: Db) => configValue(db, 'auto_queue_policy', autoQueuePolicySchema);

/** @example successScore(factors, await loadScoreWeights(db)) */
export const loadScoreWeights = (db: Db): Promise<ScoreWeights> => configValue(db, 'score_weights', scoreWeightsSchema);

// ---------------------------------------------------------------------------------------------
// The window judge (issue 13): the metrics it compares and its policy.

/** One metric of `orchestrator_config.canary_metrics` (snake_case; see `CanaryMetric`). */
export const canaryMetricSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/, 'lower-case letters, digits and _'),
  /** PromQL for a range query; `$INSTANCE` is the system's instance label, `$RANGE` the rate() range (the query step). */
  query: z
    .string()
    .min(1)
    .refine((q) => q.includes('$INSTANCE'), 'the query must select the system with $INSTANCE'),
  direction: z.enum(['increase_bad', 'decrease_bad', 'both']),
  allowed_effect: z.object({ value: z.number().min(0), unit: z.enum(['absolute', 'relative']).default('absolute') }),
  weight: z.number().positive().default(1),
  critical: z.boolean().default(false),
  optional: z.boolean().default(false),
  min_samples: z.number().int().min(1).max(10_000).default(10),
  unit: z.string().max(20).optional(),
});
export type CanaryMetricConfig = z.infer<typeof canaryMetricSchema>;
export const canaryMetricsSchema = z
  .array(canaryMetricSchema)
  .min(1)
  .refine((ms) => new Set(ms.map((m) => m.name)).size === ms.length, 'metric names must be unique');

/**
 * `orchestrator_config.canary_policy`: the verdict's thresholds (see `CanaryPolicy`) and the
 * windows, in configured seconds (`test_thresholds.time_scale_ms` shortens them in the lab):
 * the baseline is the `baseline_window_seconds` before the patch, the post window the
 * `post_window_seconds` after stabilisation, both sampled every `step_seconds` (also the rate()
 * range). The baseline waits up to `baseline_wait_seconds` for enough samples, then the step is
 * retried (never judged on nothing).
 */
export const canaryPolicySchema = z
  .object({
    pass_score: z.number().min(0).max(100).default(DEFAULT_CANARY_POLICY.passScore),
    marginal_score: z.number().min(0).max(100).default(DEFAULT_CANARY_POLICY.marginalScore),
    confidence: z.number().min(0.5).max(0.999).default(DEFAULT_CANARY_POLICY.confidence),
    serial_correlation: z.boolean().default(DEFAULT_CANARY_POLICY.serialCorrelation),
    baseline_window_seconds: seconds.min(1).default(900),
    post_window_seconds: seconds.min(1).default(900),
    step_seconds: z.number().int().min(1).max(3600).default(60),
    baseline_wait_seconds: seconds.default(1200),
  })
  .refine((p) => p.marginal_score <= p.pass_score, 'marginal_score must not exceed pass_score')
  .refine(
    (p) => p.step_seconds <= Math.min(p.baseline_window_seconds, p.post_window_seconds),
    'step_seconds must not exceed a window',
  );
export type CanaryPolicyConfig = z.infer<typeof canaryPolicySchema>;

/** A configured metric as the judge takes it. */
export function canaryMetricOf(m: CanaryMetricConfig): CanaryMetric {
  return {
    name: m.name,
    query: m.query,
    direction: m.direction,
    allowedEffect: { value: m.allowed_effect.value, unit: m.allowed_effect.unit },
    weight: m.weight,
    critical: m.critical,
    optional: m.optional,
    minSamples: m.min_samples,
    ...(m.unit !== undefined ? { unit: m.unit } : {}),
  };
}

/** A judge metric as it is configured (the seed of migration 0006). */
export function canaryMetricConfigOf(m: CanaryMetric): CanaryMetricConfig {
  return {
    name: m.name,
    query: m.query,
    direction: m.direction,
    allowed_effect: { ...m.allowedEffect },
    weight: m.weight,
    critical: m.critical,
    optional: m.optional,
    min_samples: m.minSamples,
    ...(m.unit !== undefined ? { unit: m.unit } : {}),
  };
}

/** The policy part the judge takes. */
export function canaryPolicyOf(p: CanaryPolicyConfig): CanaryPolicy {
  return {
    passScore: p.pass_score,
    marginalScore: p.marginal_score,
    confidence: p.confidence,
    serialCorrelation: p.serial_correlation,
  };
}

/** The default metric list (design §9 and issue 13), as configured. */
export const DEFAULT_CANARY_METRICS: CanaryMetricConfig[] = defaultCanaryMetrics().map(canaryMetricConfigOf);

/** @example (await loadCanaryMetrics(db)).map((m) => m.name) // ['cpu_busy_percent', …] */
export const loadCanaryMetrics = async (db: Db): Promise<CanaryMetric[]> =>
  (await configValue(db, 'canary_metrics', canaryMetricsSchema, DEFAULT_CANARY_METRICS)).map(canaryMetricOf);
/** @example (await loadCanaryPolicy(db)).baseline_window_seconds // 900 */
export const loadCanaryPolicy = (db: Db): Promise<CanaryPolicyConfig> =>
  configValue(db, 'canary_policy', canaryPolicySchema);

// ---------------------------------------------------------------------------------------------
// The change-control gate (issue 12): who may approve, how many, and for how long an approval holds.

export const approvalPolicySchema = z.object({
  /** The approver of an entry is never who queued it, started its test, retried or forced it. */
  separation_of_duties: z.boolean().default(true),
  /** Distinct approvers an ordinary entry needs. */
  required_approvals: z.number().int().min(1).max(5).default(1),
  /** Two distinct approvers (or `required_approvals`, if higher) for these severities and risk levels. */
  two_approvers: z
    .object({
      severities: z.array(z.enum(['Critical', 'High', 'Medium', 'Low', 'Unknown'])).default(['Critical']),
      risk_levels: z.array(z.enum(['Low', 'Medium', 'High', 'Very High'])).default(['Very High']),
    })
    .default({ severities: ['Critical'], risk_levels: ['Very High'] }),
  /** An approval older than this when production would start (or resume) is void. */
  approval_max_age_hours: z
    .number()
    .min(0.01)
    .max(24 * 90)
    .default(72),
});
export type ApprovalPolicy = z.infer<typeof approvalPolicySchema>;

/** @example (await loadApprovalPolicy(db)).separation_of_duties // true */
export const loadApprovalPolicy = (db: Db): Promise<ApprovalPolicy> =>
  configValue(db, 'approval_policy', approvalPolicySchema);

/**
 * What the policy asks of one errata: distinct approvers (2 for Critical severity or Very High
 * risk by default), separation of duties, and the approval's maximum age in ms.
 * @example approvalsFor(policy, { severity: 'Critical', riskLevel: 'Low' }) // { required: 2, separationOfDuties: true, maxAgeMs: 259200000 }
 */
export function approvalsFor(policy: ApprovalPolicy, errata: { severity: string | null; riskLevel: string | null }) {
  const two =
    (errata.severity !== null && (policy.two_approvers.severities as string[]).includes(errata.severity)) ||
    (errata.riskLevel !== null && (policy.two_approvers.risk_levels as string[]).includes(errata.riskLevel));
  return {
    required: two ? Math.max(2, policy.required_approvals) : policy.required_approvals,
    separationOfDuties: policy.separation_of_duties,
    maxAgeMs: Math.round(policy.approval_max_age_hours * 3_600_000),
  };
}

// ---------------------------------------------------------------------------------------------
// snapshot_retention: how long the test snapshots of an ended entry are kept (scheduler/snapshotCleanup.ts).

export const snapshotRetentionSchema = z.object({
  keep_days_after_final: z.number().int().min(0).max(3650).default(7),
});

/** @example (await loadSnapshotRetention(db)).keep_days_after_final // 7 */
export const loadSnapshotRetention = (db: Db) => configValue(db, 'snapshot_retention', snapshotRetentionSchema);

// ---------------------------------------------------------------------------------------------
// team_healthchecks: the teams' own application checks (salt-states/healthcheck.sls, pillar
// spm:healthchecks) run on the test system after every patch; a failed one fails the test.

export const teamHealthchecksSchema = z.object({
  /** Off: the tests do without them, and each judgement says so. */
  enabled: z.boolean().default(true),
  /** The SLS on the Salt master (salt-states/ installed as `spm` in file_roots). */
  sls: z
    .string()
    .regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/, 'an SLS name: dot-separated letters, digits and _')
    .default('spm.healthcheck'),
});

/** @example (await loadTeamHealthchecks(db)).sls // 'spm.healthcheck' */
export const loadTeamHealthchecks = (db: Db) => configValue(db, 'team_healthchecks', teamHealthchecksSchema);
