/**
 * The success score (pure): how likely an errata is to pass its test, 0–100, higher = safer, tested
 * first (design §10, DESIGN.md §4):
 *
 *   100 − (kernel 30 + reboot 15 + config 10 + deps 3 each, max 15 + size 2 per MB, max 10
 *          + history up to 20, only once tested ≥ 3 times) + 5 when the whole errata is < 100 KB,
 *   clamped to 0–100. Weights come from `orchestrator_config.score_weights`.
 *
 * The breakdown is returned (and stored in `patch_risk_profile.score_breakdown`) so that an operator
 * can see why an errata scores what it does.
 */
import { z } from 'zod';

/** Package-name patterns of the design §10. */
export const KERNEL_PATTERNS: readonly RegExp[] = [
  /^linux-image/,
  /^linux-headers/,
  /^linux-modules/,
  /^kernel-/,
  /^grub/,
  /^shim-signed/,
  /^systemd-boot/,
  /^dracut/,
  /^initramfs/,
];
export const REBOOT_PATTERNS: readonly RegExp[] = [
  /^linux-/,
  /^kernel-/,
  /^glibc/,
  /^libc6/,
  /^systemd$/,
  /^dbus$/,
  /^openssl/,
];
export const CONFIG_PATTERNS: readonly RegExp[] = [
  /^openssh/,
  /^nginx/,
  /^apache2?/,
  /^httpd/,
  /^postgresql/,
  /^mysql/,
  /^mariadb/,
];

const weight = z.number().min(0).max(100);
export const scoreWeightsSchema = z.object({
  kernel_penalty: weight.default(30),
  reboot_penalty: weight.default(15),
  config_penalty: weight.default(10),
  dependency_penalty_per: weight.default(3),
  dependency_penalty_max: weight.default(15),
  size_penalty_per_mb: weight.default(2),
  size_penalty_max: weight.default(10),
  history_penalty_max: weight.default(20),
  small_patch_bonus: weight.default(5),
  small_patch_kb: z.number().min(0).max(1_000_000).default(100),
  history_min_tests: z.number().int().min(1).max(1000).default(3),
});
export type ScoreWeights = z.infer<typeof scoreWeightsSchema>;
export const DEFAULT_WEIGHTS: ScoreWeights = scoreWeightsSchema.parse({});

/** What the score is computed from (a risk profile). */
export interface RiskFactors {
  affectsKernel: boolean;
  requiresReboot: boolean;
  modifiesConfig: boolean;
  dependencyCount: number;
  totalSizeKb: number;
  timesTested: number;
  timesFailed: number;
}

export interface ScoreBreakdown {
  kernel: number;
  reboot: number;
  config: number;
  dependencies: number;
  size: number;
  history: number;
  small_patch_bonus: number;
  raw: number;
  score: number;
  risk_level: RiskLevel;
}

export type RiskLevel = 'Low' | 'Medium' | 'High' | 'Very High';

/** 80–100 Low, 60–79 Medium, 40–59 High, 0–39 Very High. */
export function riskLevel(score: number): RiskLevel {
  if (score >= 80) return 'Low';
  if (score >= 60) return 'Medium';
  if (score >= 40) return 'High';
  return 'Very High';
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * Compute the score and its breakdown.
 * @example
 * successScore({ affectsKernel: true, requiresReboot: true, modifiesConfig: false, dependencyCount: 2,
 *                totalSizeKb: 80_000, timesTested: 0, timesFailed: 0 }).score // 100 − 30 − 15 − 6 − 10 = 39
 */
export function successScore(f: RiskFactors, w: ScoreWeights = DEFAULT_WEIGHTS): ScoreBreakdown {
  const kernel = f.affectsKernel ? w.kernel_penalty : 0;
  const reboot = f.requiresReboot ? w.reboot_penalty : 0;
  const config = f.modifiesConfig ? w.config_penalty : 0;
  const dependencies = Math.min(w.dependency_penalty_max, w.dependency_penalty_per * Math.max(0, f.dependencyCount));
  const size = round1(Math.min(w.size_penalty_max, w.size_penalty_per_mb * (Math.max(0, f.totalSizeKb) / 1024)));
  const tested = Math.max(0, f.timesTested);
  const failRate = tested > 0 ? Math.min(1, Math.max(0, f.timesFailed) / tested) : 0;
  const history = tested >= w.history_min_tests ? round1(w.history_penalty_max * failRate) : 0;
  const small_patch_bonus = f.totalSizeKb < w.small_patch_kb ? w.small_patch_bonus : 0;
  const raw = round1(100 - (kernel + reboot + config + dependencies + size + history) + small_patch_bonus);
  const score = Math.max(0, Math.min(100, Math.round(raw)));
  return {
    kernel,
    reboot,
    config,
    dependencies,
    size,
    history,
    small_patch_bonus,
    raw,
    score,
    risk_level: riskLevel(score),
  };
}

export interface PackageInfo {
  name: string;
  /** Bytes (UYUNI `errata.listPackages` gives `size`); absent counts as 0. */
  size?: number | undefined;
}

/**
 * Risk factors of an errata from its packages (design §10 patterns); history comes from earlier tests.
 * Dependencies are the packages beyond the first one the errata ships.
 */
export function factorsFromPackages(
  packages: readonly PackageInfo[],
  history: { timesTested: number; timesFailed: number; rebootSuggested?: boolean },
): RiskFactors {
  const names = packages.map((p) => p.name);
  const any = (patterns: readonly RegExp[]) => names.some((n) => patterns.some((re) => re.test(n)));
  return {
    affectsKernel: any(KERNEL_PATTERNS),
    requiresReboot: any(REBOOT_PATTERNS) || history.rebootSuggested === true,
    modifiesConfig: any(CONFIG_PATTERNS),
    dependencyCount: Math.max(0, new Set(names).size - 1),
    totalSizeKb: Math.round(
      packages.reduce((s, p) => s + (Number.isFinite(p.size) ? Math.max(0, p.size ?? 0) : 0), 0) / 1024,
    ),
    timesTested: history.timesTested,
    timesFailed: history.timesFailed,
  };
}
