import { describe, expect, it } from 'vitest';
import {
  classifyMetric,
  DEFAULT_CANARY_POLICY,
  defaultCanaryMetrics,
  judgeCanary,
  lag1Autocorrelation,
  renderQuery,
  type CanaryMetric,
  type Windows,
} from './canary.ts';
import { prng } from '../../random.ts';

/** n values uniform in level ± spread. */
const noisy = (seed: number, n: number, level: number, spread: number) => {
  const r = prng(seed);
  return Array.from({ length: n }, () => level + spread * (2 * r() - 1));
};
const constant = (n: number, v: number) => new Array<number>(n).fill(v);

const metric = (over: Partial<CanaryMetric> = {}): CanaryMetric => ({
  name: 'm',
  query: 'x{instance="$INSTANCE"}',
  direction: 'increase_bad',
  allowedEffect: { value: 10, unit: 'absolute' },
  weight: 1,
  critical: false,
  optional: false,
  minSamples: 10,
  ...over,
});
const W = (baseline: number[], post: number[]): Windows => ({ baseline, post });

describe('classifyMetric', () => {
  it('no_data when either window has fewer than minSamples; a metric gone after the patch has vanished', () => {
    const short = classifyMetric(metric(), W(noisy(1, 9, 50, 5), noisy(2, 15, 50, 5)));
    expect(short).toMatchObject({ classification: 'no_data', vanished: false, test: null, shift: null });
    expect(short.why).toContain('baseline has 9 of the 10 samples needed');
    const gone = classifyMetric(metric(), W(noisy(1, 15, 50, 5), []));
    expect(gone).toMatchObject({ classification: 'no_data', vanished: true });
    expect(gone.why).toContain('vanished');
    expect(classifyMetric(metric(), undefined)).toMatchObject({ classification: 'no_data', vanished: false });
  });

  it('drops NaN and ±Inf samples before counting (Prometheus answers "NaN" for 0/0)', () => {
    const r = classifyMetric(
      metric({ minSamples: 10 }),
      W([...noisy(1, 10, 50, 5), NaN, Infinity], [...noisy(2, 9, 50, 5), NaN]),
    );
    expect(r).toMatchObject({ classification: 'no_data' });
    expect(r.baseline.n).toBe(10);
    expect(r.post.n).toBe(9);
  });

  it('pass on noise without a shift, with the test and interval as evidence', () => {
    const r = classifyMetric(metric(), W(noisy(1, 15, 50, 5), noisy(2, 15, 50, 5)));
    expect(r.classification).toBe('pass');
    expect(r.test!.pValue).toBeGreaterThan(0.05);
    expect(r.shift!.low).toBeLessThan(0);
    expect(r.shift!.high).toBeGreaterThan(0);
    expect(r.why).toMatch(/^m: no significant change/);
  });

  it('a significant shift within the allowed effect is a pass, never a fail', () => {
    const r = classifyMetric(
      metric({ allowedEffect: { value: 10, unit: 'absolute' } }),
      W(noisy(1, 15, 50, 1), noisy(2, 15, 56, 1)),
    );
    expect(r.test!.pValue).toBeLessThan(0.001);
    expect(r.shift!.estimate).toBeGreaterThan(5);
    expect(r.classification).toBe('pass');
    expect(r.why).toContain('within the allowed +10');
  });

  it('high when the whole interval lies above the allowed effect', () => {
    const r = classifyMetric(metric({ unit: 'points' }), W(noisy(1, 15, 50, 2), noisy(2, 15, 70, 2)));
    expect(r.classification).toBe('high');
    expect(r.shift!.low).toBeGreaterThan(10);
    expect(r.marginP!.increase).toBeLessThan(0.025);
    expect(r.why).toMatch(/^m: rose \+\d+(\.\d+)? points \(95 % interval .*beyond the allowed \+10 points/);
  });

  it('a shift estimated beyond the allowance but with an interval reaching into it is a pass', () => {
    // post − baseline ≈ 12 with a spread of ±10: the interval includes shifts below 10
    const r = classifyMetric(metric(), W(noisy(3, 15, 50, 10), noisy(4, 15, 62, 10)));
    expect(r.shift!.estimate).toBeGreaterThan(10);
    expect(r.shift!.low).toBeLessThan(10);
    expect(r.classification).toBe('pass');
  });

  it('direction-aware: increase_bad ignores a fall, decrease_bad ignores a rise, both sees either', () => {
    const fall = W(noisy(1, 15, 50, 1), noisy(2, 15, 20, 1));
    const rise = W(noisy(1, 15, 50, 1), noisy(2, 15, 80, 1));
    expect(classifyMetric(metric({ direction: 'increase_bad' }), fall).classification).toBe('pass');
    expect(classifyMetric(metric({ direction: 'decrease_bad' }), fall).classification).toBe('low');
    expect(classifyMetric(metric({ direction: 'decrease_bad' }), rise).classification).toBe('pass');
    expect(classifyMetric(metric({ direction: 'both' }), rise).classification).toBe('high');
    expect(classifyMetric(metric({ direction: 'both' }), fall).classification).toBe('low');
    expect(classifyMetric(metric({ direction: 'increase_bad' }), fall).marginP).toEqual({
      increase: expect.any(Number),
      decrease: null,
    });
  });

  it('relative allowed effect: a fraction of the baseline median', () => {
    const m = metric({ allowedEffect: { value: 0.5, unit: 'relative' } }); // 50 % of 10 = 5
    const r = classifyMetric(m, W(noisy(1, 15, 10, 0.5), noisy(2, 15, 13, 0.5)));
    expect(r.allowed).toBeCloseTo(5, 0);
    expect(r.classification).toBe('pass');
    expect(classifyMetric(m, W(noisy(1, 15, 10, 0.5), noisy(2, 15, 18, 0.5))).classification).toBe('high');
    expect(r.why).toContain('50 % of the baseline median');
  });

  it('running services 20 → 19 with no fall allowed is low (counts: every value tied)', () => {
    const r = classifyMetric(
      metric({ direction: 'decrease_bad', allowedEffect: { value: 0, unit: 'absolute' } }),
      W(constant(15, 20), constant(15, 19)),
    );
    expect(r).toMatchObject({ classification: 'low', shift: { estimate: -1, low: -1, high: -1 } });
  });

  it('a unit failed in 5 of 15 samples after the patch and never before is high, though the median shift is 0', () => {
    const post = [0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0];
    const r = classifyMetric(metric({ allowedEffect: { value: 0, unit: 'absolute' } }), W(constant(15, 0), post));
    expect(r.shift!.estimate).toBe(0);
    expect(r.classification).toBe('high');
    expect(r.why).toContain('mean 0 → 0.33');
    // one failed sample is not enough evidence
    expect(
      classifyMetric(
        metric({ allowedEffect: { value: 0, unit: 'absolute' } }),
        W(constant(15, 0), [1, ...constant(14, 0)]),
      ).classification,
    ).toBe('pass');
  });

  it('a unit already failed before the patch is not blamed on it', () => {
    expect(
      classifyMetric(metric({ allowedEffect: { value: 0, unit: 'absolute' } }), W(constant(15, 1), constant(15, 1)))
        .classification,
    ).toBe('pass');
  });

  it('all-zero and identical windows: pass, p = 1, shift 0', () => {
    const zero = classifyMetric(
      metric({ allowedEffect: { value: 0, unit: 'absolute' } }),
      W(constant(15, 0), constant(15, 0)),
    );
    expect(zero).toMatchObject({
      classification: 'pass',
      test: { pValue: 1 },
      shift: { estimate: 0, low: 0, high: 0 },
    });
    const same = noisy(9, 15, 30, 3);
    expect(
      classifyMetric(metric({ allowedEffect: { value: 0, unit: 'absolute' } }), W(same, same)).classification,
    ).toBe('pass');
  });

  it('tiny windows cannot show a change: 3 against 3 is at best one-sided p = 0.05', () => {
    const r = classifyMetric(
      metric({ minSamples: 3, allowedEffect: { value: 0, unit: 'absolute' } }),
      W([1, 2, 3], [100, 101, 102]),
    );
    expect(r.test!.method).toBe('exact');
    expect(r.marginP!.increase).toBeCloseTo(0.05, 12);
    expect(r.classification).toBe('pass');
  });

  it('without ties, high ⇔ the interval lies above the allowed effect (the documented equivalence)', () => {
    const r = prng(5);
    for (let i = 0; i < 200; i++) {
      const n1 = 5 + Math.floor(r() * 20);
      const n2 = 5 + Math.floor(r() * 20);
      const shift = r() * 30;
      const res = classifyMetric(
        metric({ minSamples: 5 }),
        W(noisy(100 + i, n1, 50, 8), noisy(500 + i, n2, 50 + shift, 8)),
      );
      expect(res.classification === 'high', `case ${i}`).toBe(res.shift!.low > 10);
    }
  });

  it('serialCorrelation widens the test with the baseline lag-1 autocorrelation', () => {
    const drift = Array.from({ length: 15 }, (_, i) => 50 + 4 * Math.sin(i / 3));
    expect(lag1Autocorrelation(drift)).toBeGreaterThan(0.5);
    expect(lag1Autocorrelation(constant(10, 3))).toBe(0);
    const post = drift.map((v) => v + 3);
    const plain = classifyMetric(metric(), W(drift, post));
    const corrected = classifyMetric(metric(), W(drift, post), { ...DEFAULT_CANARY_POLICY, serialCorrelation: true });
    expect(plain.serial!.inflation).toBe(1);
    expect(corrected.serial!.inflation).toBeGreaterThan(1);
    expect(corrected.serial!.inflation).toBeLessThanOrEqual(15 / 5);
    expect(corrected.test!.pValue).toBeGreaterThan(plain.test!.pValue);
    expect(corrected.why).toContain('serial correlation');
  });
});

describe('judgeCanary', () => {
  const cpu = metric({ name: 'cpu', critical: true, weight: 3, allowedEffect: { value: 20, unit: 'absolute' } });
  const mem = metric({ name: 'mem', critical: true, weight: 3, allowedEffect: { value: 15, unit: 'absolute' } });
  const load = metric({ name: 'load', weight: 1, allowedEffect: { value: 0.5, unit: 'absolute' } });
  const net = metric({ name: 'net', weight: 1, optional: true, allowedEffect: { value: 0, unit: 'absolute' } });
  const calm = {
    cpu: W(noisy(1, 15, 30, 5), noisy(2, 15, 31, 5)),
    mem: W(noisy(3, 15, 40, 1), noisy(4, 15, 40, 1)),
    load: W(noisy(5, 15, 0.3, 0.1), noisy(6, 15, 0.3, 0.1)),
    net: W(constant(15, 0), constant(15, 0)),
  };

  it('pass with score 100 when every metric passes', () => {
    expect(judgeCanary([cpu, mem, load, net], calm)).toMatchObject({ verdict: 'pass', score: 100, reasons: [] });
  });

  it('a critical metric beyond its allowance fails the verdict alone, whatever the score', () => {
    const v = judgeCanary([cpu, mem, load, net], { ...calm, mem: W(noisy(3, 15, 40, 1), noisy(4, 15, 70, 1)) });
    expect(v.verdict).toBe('fail');
    expect(v.score).toBe(62.5); // 5 of 8
    expect(v.reasons[0]).toMatch(/^critical mem: rose/);
  });

  it('a critical failure wins over missing data', () => {
    const v = judgeCanary([cpu, mem, load], { cpu: calm.cpu, mem: W(noisy(3, 15, 40, 1), noisy(4, 15, 70, 1)) });
    expect(v.verdict).toBe('fail');
  });

  it('a required metric with no data makes the verdict inconclusive, never a pass', () => {
    const v = judgeCanary([cpu, mem, load, net], { ...calm, mem: W([], noisy(4, 15, 40, 1)) });
    expect(v.verdict).toBe('inconclusive');
    expect(v.score).toBe(100); // what was measured passed — still not a pass
    expect(v.reasons).toEqual(['mem: no data (baseline has 0 of the 10 samples needed)']);
  });

  it('an optional metric absent on the host is left out of the score', () => {
    const v = judgeCanary([cpu, mem, load, net], { ...calm, net: undefined });
    expect(v).toMatchObject({ verdict: 'pass', score: 100 });
    expect(v.metrics.find((m) => m.name === 'net')!.classification).toBe('no_data');
  });

  it('an optional metric that vanished after the patch makes the verdict inconclusive', () => {
    const v = judgeCanary([cpu, mem, load, net], { ...calm, net: W(constant(15, 0), []) });
    expect(v.verdict).toBe('inconclusive');
    expect(v.reasons[0]).toContain('vanished');
  });

  it('score = weights passing / weights measured; below passScore → marginal, below marginalScore → fail', () => {
    const loadHigh = W(noisy(5, 15, 0.3, 0.1), noisy(6, 15, 1.5, 0.1));
    const marginal = judgeCanary([cpu, mem, load, net], { ...calm, load: loadHigh });
    expect(marginal).toMatchObject({ verdict: 'marginal', score: 87.5 }); // 7 of 8
    expect(marginal.reasons).toEqual(['score 87.5 is below the pass score 95', expect.stringMatching(/^load: rose/)]);
    expect(judgeCanary([cpu, mem, load, net], { ...calm, load: loadHigh }, { passScore: 85 })).toMatchObject({
      verdict: 'pass',
      score: 87.5,
    });
    const fail = judgeCanary([cpu, mem, load, net], { ...calm, load: loadHigh }, { passScore: 95, marginalScore: 90 });
    expect(fail).toMatchObject({ verdict: 'fail', score: 87.5 });
    expect(fail.reasons[0]).toBe('score 87.5 is below the marginal score 90');
  });

  it('nothing measured or nothing configured: inconclusive', () => {
    expect(judgeCanary([net], {})).toMatchObject({
      verdict: 'inconclusive',
      score: null,
      reasons: ['no metric has data'],
    });
    expect(judgeCanary([], {})).toMatchObject({ verdict: 'inconclusive', reasons: ['no metrics are configured'] });
  });

  it('refuses a malformed configuration', () => {
    expect(() => judgeCanary([cpu, cpu], calm)).toThrow(/twice/);
    expect(() => judgeCanary([metric({ weight: 0 })], {})).toThrow(/weight/);
    expect(() => judgeCanary([metric({ allowedEffect: { value: -1, unit: 'absolute' } })], {})).toThrow(
      /allowed effect/,
    );
    expect(() => judgeCanary([cpu], calm, { passScore: 70, marginalScore: 80 })).toThrow(/marginalScore/);
  });
});

describe('default metrics', () => {
  it('seeded from the test thresholds: CPU, memory and failed units critical with their limits', () => {
    const m = defaultCanaryMetrics({ cpu_delta_percent: 25, memory_delta_percent: 10, max_failed_services: 1 });
    expect(m.map((x) => x.name)).toEqual([
      'cpu_busy_percent',
      'memory_used_percent',
      'failed_units',
      'running_services',
      'reboot_required',
      'load1_per_cpu',
      'network_errors_per_second',
    ]);
    expect(m.filter((x) => x.critical).map((x) => [x.name, x.allowedEffect.value])).toEqual([
      ['cpu_busy_percent', 25],
      ['memory_used_percent', 10],
      ['failed_units', 1],
    ]);
    expect(m.filter((x) => x.optional).map((x) => x.name)).toEqual([
      'reboot_required',
      'load1_per_cpu',
      'network_errors_per_second',
    ]);
    for (const x of m) expect(x.query).toContain('$INSTANCE');
  });

  it('renderQuery fills the instance (escaped for a PromQL string) and the rate range', () => {
    const cpu = defaultCanaryMetrics()[0]!;
    expect(renderQuery(cpu.query, { instance: 'web01', rangeS: 60 })).toBe(
      '100 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",instance="web01"}[60s])) * 100',
    );
    expect(renderQuery('up{instance="$INSTANCE"}', { instance: 'a"b\\c', rangeS: 30 })).toBe(
      'up{instance="a\\"b\\\\c"}',
    );
  });

  it('judges a calm host with the defaults as pass', () => {
    const windows = {
      cpu_busy_percent: W(noisy(1, 15, 20, 6), noisy(2, 15, 21, 6)),
      memory_used_percent: W(noisy(3, 15, 45, 0.5), noisy(4, 15, 45.3, 0.5)),
      failed_units: W(constant(15, 0), constant(15, 0)),
      running_services: W(constant(15, 31), constant(15, 31)),
      reboot_required: W(constant(15, 0), constant(15, 0)),
      load1_per_cpu: W(noisy(5, 15, 0.2, 0.05), noisy(6, 15, 0.21, 0.05)),
    };
    expect(judgeCanary(defaultCanaryMetrics(), windows)).toMatchObject({ verdict: 'pass', score: 100 });
  });
});
