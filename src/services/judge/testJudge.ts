/**
 * The verdict of a test (pure): the window judge over the configured Prometheus metrics
 * (`judgeCanary`) together with what the engine checks live — the critical services from Salt
 * (a service active at baseline and not after the patch is a critical failure on its own) and the
 * reboot (one that was required must have happened) — in one judgement with every number kept.
 *
 * Order of the rules: a failed critical service, a failed team health check (`spm.healthcheck`) or
 * a missing reboot fails; a failing window
 * verdict (a critical metric beyond its allowance, or the score below `marginalScore`) fails;
 * services or team checks that could not be checked, or a window verdict without the data it needs, are
 * **inconclusive** (never a pass on missing evidence); then marginal (a human decides) or pass.
 *
 * Without Prometheus configured (`canary: null`) the services alone decide, as before issue 13,
 * and the judgement says so (`judge: 'salt_only'` and a note).
 *
 * The machine's validate output knows pass / fail / inconclusive: `machineVerdict` maps marginal to
 * `pass` with `marginal: true` (the entry goes to pending_approval, where a human decides anyway;
 * the evidence, the entry page and the approval message carry "marginal" and the reasons).
 */
import { servicesCheck, type Check } from '../judge.ts';
import {
  DEFAULT_CANARY_POLICY,
  judgeCanary,
  type CanaryMetric,
  type CanaryPolicy,
  type CanaryVerdictKind,
  type MetricResult,
  type Windows,
} from './canary.ts';

export interface TestJudgeInput {
  services: { baseline: Record<string, boolean | null>; post: Record<string, boolean | null> };
  maxFailedServices: number;
  /** null: Prometheus is not configured — the services alone decide. */
  canary: {
    metrics: readonly CanaryMetric[];
    windows: Readonly<Record<string, Windows | undefined>>;
    policy: Partial<CanaryPolicy>;
  } | null;
  /** What the test did about a reboot (null: not known). */
  reboot: { required: boolean; rebooted: boolean } | null;
  /**
   * The teams' own application checks (`spm.healthcheck` through Salt) after the patch: each
   * check's result, or why they could not run; null: switched off (`team_healthchecks.enabled`).
   * Absent: not asked (callers before issue 14).
   */
  teamChecks?: TeamChecks | null;
}

/** What `spm.healthcheck` said: one result per team check (none configured: []), or why it could not run. */
export type TeamChecks = { checks: { name: string; ok: boolean; comment: string }[] } | { error: string };

export interface TeamHealthCheck {
  check: 'team_healthchecks';
  ok: boolean | null;
  /** Each check by name: passed or not, and Salt's comment. */
  results: { name: string; ok: boolean; comment: string }[];
  detail: string;
}

export interface RebootCheck {
  check: 'reboot';
  required: boolean;
  rebooted: boolean;
  ok: boolean;
  detail: string;
}

/** One metric's result with what it was computed from: the query and both windows' samples. */
export interface JudgedMetric extends MetricResult {
  query: string;
  unit: string | null;
  samples: { baseline: number[]; post: number[] };
}

export interface TestJudgement {
  judge: 'canary' | 'salt_only';
  verdict: CanaryVerdictKind;
  /** The window judge's score 0–100 (null: nothing measured, or Salt only). */
  score: number | null;
  /** Why, most important first (empty for a clean pass). */
  reasons: string[];
  policy: { passScore: number; marginalScore: number; confidence: number } | null;
  checks: (Check | RebootCheck | TeamHealthCheck)[];
  failedServices: string[];
  /** The team health checks that failed after the patch, by name. */
  failedTeamChecks: string[];
  metrics: JudgedMetric[];
  notes: string[];
}

/**
 * @example
 * judgeTest({ services: { baseline, post }, maxFailedServices: 0, canary: { metrics, windows, policy: {} }, reboot: null })
 * // { judge: 'canary', verdict: 'pass', score: 100, reasons: [], … }
 */
export function judgeTest(input: TestJudgeInput): TestJudgement {
  const { check: svc, failedServices } = servicesCheck(
    input.services.baseline,
    input.services.post,
    input.maxFailedServices,
  );
  const checks: (Check | RebootCheck | TeamHealthCheck)[] = [svc];
  const notes: string[] = [];
  const reasons: string[] = [];

  let rebootBad = false;
  if (input.reboot) {
    const { required, rebooted } = input.reboot;
    rebootBad = required && !rebooted;
    checks.push({
      check: 'reboot',
      required,
      rebooted,
      ok: !rebootBad,
      detail: required
        ? rebooted
          ? 'required, rebooted, the host came back'
          : 'required and not done'
        : 'not required',
    });
  }

  // A team check is a critical check (DESIGN §4): one that fails after the patch vetoes the test;
  // checks that could not run leave the verdict inconclusive, never a pass.
  const team = input.teamChecks;
  const failedTeamChecks = team && 'checks' in team ? team.checks.filter((c) => !c.ok).map((c) => c.name) : [];
  const teamUnknown = team !== undefined && team !== null && 'error' in team ? team.error : null;
  if (team === null) notes.push('the team health checks are switched off (team_healthchecks.enabled = false)');
  if (team && 'checks' in team && team.checks.length === 0)
    notes.push('no team health checks are configured (pillar spm:healthchecks is empty)');
  if (team !== undefined && team !== null) {
    const results = 'checks' in team ? team.checks : [];
    checks.push({
      check: 'team_healthchecks',
      ok: teamUnknown !== null ? null : failedTeamChecks.length === 0,
      results,
      detail:
        teamUnknown !== null
          ? `could not run: ${teamUnknown}`
          : failedTeamChecks.length > 0
            ? `failed: ${failedTeamChecks.join(', ')}`
            : `${results.length} passed`,
    });
  }

  const canary = input.canary ? judgeCanary(input.canary.metrics, input.canary.windows, input.canary.policy) : null;
  const metrics: JudgedMetric[] = canary
    ? canary.metrics.map((r, i) => {
        const m = input.canary!.metrics[i]!;
        const w = input.canary!.windows[m.name];
        return {
          ...r,
          query: m.query,
          unit: m.unit ?? null,
          samples: {
            baseline: (w?.baseline ?? []).filter(Number.isFinite),
            post: (w?.post ?? []).filter(Number.isFinite),
          },
        };
      })
    : [];
  const p = input.canary ? { ...DEFAULT_CANARY_POLICY, ...input.canary.policy } : null;
  const policy = p ? { passScore: p.passScore, marginalScore: p.marginalScore, confidence: p.confidence } : null;
  if (!canary)
    notes.push(
      'Prometheus is not configured: no window metrics were judged, the critical services (Salt) decided alone',
    );

  const base = {
    judge: canary ? ('canary' as const) : ('salt_only' as const),
    score: canary?.score ?? null,
    policy,
    checks,
    failedServices,
    failedTeamChecks,
    metrics,
    notes,
  };

  if (svc.ok === false) reasons.push(`critical service(s) failed after the patch: ${failedServices.join(', ')}`);
  if (rebootBad) reasons.push('a reboot was required and did not happen');
  if (failedTeamChecks.length > 0 && team && 'checks' in team) {
    const said = team.checks
      .filter((c) => !c.ok)
      .map((c) => `${c.name}${c.comment ? ` (${c.comment.slice(0, 200)})` : ''}`);
    reasons.push(`team health check(s) failed after the patch: ${said.join('; ')}`);
  }
  if (svc.ok === false || rebootBad || failedTeamChecks.length > 0)
    return { ...base, verdict: 'fail', reasons: [...reasons, ...(canary?.reasons ?? [])] };
  if (canary?.verdict === 'fail') return { ...base, verdict: 'fail', reasons: canary.reasons };
  if (svc.ok === null) {
    return {
      ...base,
      verdict: 'inconclusive',
      reasons: [
        'the critical services could not be checked (no status from Salt or Prometheus on one side)',
        ...(canary?.reasons ?? []),
      ],
    };
  }
  if (teamUnknown !== null) {
    return {
      ...base,
      verdict: 'inconclusive',
      reasons: [`the team health checks could not run: ${teamUnknown}`, ...(canary?.reasons ?? [])],
    };
  }
  if (canary?.verdict === 'inconclusive') return { ...base, verdict: 'inconclusive', reasons: canary.reasons };
  if (canary?.verdict === 'marginal') return { ...base, verdict: 'marginal', reasons: canary.reasons };
  return { ...base, verdict: 'pass', reasons: canary?.reasons ?? [] };
}

/**
 * The machine's validate verdict for a judgement: marginal is a pass that carries `marginal: true`
 * (pending_approval, a human decides), and its reasons.
 * @example machineVerdict(j) // { verdict: 'pass', reason: 'marginal: score 90 is below the pass score 95; …', marginal: true }
 */
export function machineVerdict(j: TestJudgement): {
  verdict: 'pass' | 'fail' | 'inconclusive';
  reason: string | null;
  marginal: boolean;
} {
  const why = j.reasons.join('; ');
  if (j.verdict === 'pass') return { verdict: 'pass', reason: null, marginal: false };
  if (j.verdict === 'marginal') return { verdict: 'pass', reason: `marginal: ${why}`, marginal: true };
  if (j.verdict === 'fail') return { verdict: 'fail', reason: why || 'the judge failed the test', marginal: false };
  return { verdict: 'inconclusive', reason: `inconclusive: ${why || 'no evidence'}`, marginal: false };
}
