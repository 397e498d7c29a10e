/**
 * The judgement of an entry's latest test, as `GET /queue/{id}` shows it beside the tests: the
 * window judge's verdict (pass / marginal / fail / inconclusive — marginal is a pass for the
 * machine, so the entry waits in pending_approval and this says why a human should look), the
 * score, the reasons, and per metric the numbers (samples, U, p-value, shift and its interval, the
 * allowed effect, classification and why). The full windows stay in the test's `metrics_delta`.
 */

type TestRow = Readonly<Record<string, unknown>>;

/**
 * Null when there is no test yet or it was judged before issue 13 (instant checks).
 * @example
 * latestJudgement(tests) // { test_id: 4, verdict: 'marginal', marginal: true, score: 86.7, reasons: [...], metrics: [...] }
 */
export function latestJudgement(tests: readonly TestRow[]) {
  const test = tests.at(-1);
  const j = test?.metrics_delta as Record<string, any> | null | undefined;
  if (!test || !j || Array.isArray(j) || typeof j.verdict !== 'string') return null;
  return {
    test_id: test.id,
    judge: j.judge,
    verdict: j.verdict as string,
    marginal: j.verdict === 'marginal',
    score: j.score ?? null,
    reasons: (j.reasons ?? []) as string[],
    failed_services: (j.failedServices ?? []) as string[],
    checks: j.checks ?? [],
    notes: j.notes ?? [],
    metrics: ((j.metrics ?? []) as any[]).map((m) => ({
      name: m.name,
      classification: m.classification,
      critical: m.critical,
      optional: m.optional,
      baseline: { n: m.baseline?.n ?? 0, median: m.baseline?.median ?? null, samples: m.samples?.baseline ?? [] },
      post: { n: m.post?.n ?? 0, median: m.post?.median ?? null, samples: m.samples?.post ?? [] },
      u: m.test?.u ?? null,
      p_value: m.test?.pValue ?? null,
      method: m.test?.method ?? null,
      shift: m.shift ?? null,
      allowed: m.allowed ?? null,
      direction: m.direction,
      why: m.why,
    })),
  };
}
