/**
 * `npm run bench:judge` — a false-pass study of the window judge (issue 13), a table, not a test.
 *
 * Every simulated test is a host observed for 35 minutes around a patch, as Prometheus would give it:
 * node_exporter scraped every 15 s; the judge's range queries at a 60 s step with `rate(…[60s])`
 * (points that do not overlap); a 15-minute baseline window before the patch, 5 minutes of
 * stabilisation, a 15-minute post window. The host's CPU is a slowly wandering workload
 * (AR(1), time constant 5 min) plus fast noise and occasional cron-like bursts; memory wanders
 * slowly; load follows CPU with node's 1-minute exponential smoothing; a third of the hosts have a
 * NIC that logs sporadic errors at a wandering rate; some hosts already have a failed unit, a
 * pending reboot, or a timer service that is active now and then.
 *
 * Scenarios (ground truth in brackets), `--n` tests each (default 1000):
 * - noisy_unchanged [good]: the patch changes nothing, on noisy hosts;
 * - cpu_within_allowed [good]: CPU rises by 10–70 % of the allowed effect (2–14 points);
 * - memory_leak [bad]: memory grows linearly from the patch on, by 1.5–3 × the allowed effect on
 *   average over the post window;
 * - service_failure [bad]: a unit fails after the patch, for good (60 %) or in a restart loop that
 *   keeps it failed 30–70 % of the time (40 %);
 * - metric_disappears [must not pass]: CPU, memory or the systemd collector stops answering after
 *   the patch, nothing else changes;
 * - just_started [half good, half a leak as above]: Prometheus has only 0–6 baseline samples.
 *
 * Between the allowed effect and 1.5 × it lies an indifference zone no scenario samples: a
 * regression just at the allowance is a coin toss for any judge.
 *
 * Each test is judged by `judgeCanary` with the default metrics and policy, and by today's instant
 * rule (`src/services/judge.ts`, reimplemented below): one baseline instant (at the patch, CPU as a
 * 5-minute rate) against one post instant (at the end of the post window, so it sees as much of a
 * leak as the new judge), deltas against 20 / 15 points and 0 failed services (Salt's view at that
 * instant), checks with no data dropped.
 *
 * false pass = verdict pass on a test whose truth is bad; false fail = verdict fail on a good one.
 * Last line: `bench:judge: tests=N false_pass_rate=… false_fail_rate=… old_false_pass_rate=… old_false_fail_rate=…`
 */
import {
  defaultCanaryMetrics,
  judgeCanary,
  type CanaryVerdictKind,
  type Windows,
} from '../src/services/judge/canary.ts';
import { prng } from '../src/random.ts';

const argN = process.argv.indexOf('--n');
const N = argN > 0 ? Number(process.argv[argN + 1]) : 1000;
const argSeed = process.argv.indexOf('--seed');
const SEED = argSeed > 0 ? Number(process.argv[argSeed + 1]) : 20261201;
/** `--explain`: print the evidence of the first false passes, false fails and good tests judged marginal. */
const EXPLAIN = process.argv.includes('--explain');
const explained = { pass: 0, fail: 0, marginal: 0 };

const SCRAPE_S = 15;
const STEP_S = 60;
const BASELINE_MIN = 15;
const STABILISE_MIN = 5;
const POST_MIN = 15;
const WARMUP_MIN = 10; // history before the baseline window, for the old rule's 5-minute rate
const LIMITS = { cpu_delta_percent: 20, memory_delta_percent: 15, max_failed_services: 0 };

/* ------------------------------------------------------------------ seeded randomness */

const mulberry32 = prng;

class Rng {
  private readonly next: () => number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  uniform(a = 0, b = 1): number {
    return a + (b - a) * this.next();
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  int(a: number, b: number): number {
    return Math.floor(this.uniform(a, b + 1));
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  poisson(lambda: number): number {
    if (lambda <= 0) return 0;
    const l = Math.exp(-lambda);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= this.next();
    } while (p > l);
    return k - 1;
  }
}

/** AR(1) with a time constant, stationary standard deviation `sd`, at the scrape interval. */
function ar1(rng: Rng, n: number, tauS: number, sd: number): number[] {
  const phi = Math.exp(-SCRAPE_S / tauS);
  const innov = sd * Math.sqrt(1 - phi * phi);
  const out = new Array<number>(n);
  let x = sd * rng.normal();
  for (let i = 0; i < n; i++) {
    x = phi * x + innov * rng.normal();
    out[i] = x;
  }
  return out;
}

/* ------------------------------------------------------------------ one host */

type Scenario =
  | 'noisy_unchanged'
  | 'cpu_within_allowed'
  | 'memory_leak'
  | 'service_failure'
  | 'metric_disappears'
  | 'just_started';
const SCENARIOS: Scenario[] = [
  'noisy_unchanged',
  'cpu_within_allowed',
  'memory_leak',
  'service_failure',
  'metric_disappears',
  'just_started',
];

interface Host {
  /** Per scrape (15 s), from the start of the warm-up. */
  cpuBusy: number[]; // percent
  memUsed: number[]; // percent
  failedUnits: number[];
  runningServices: number[];
  /** The unit that breaks after the patch: 1 = failed at that scrape. */
  brokenUnit: number[];
  /** The timer service: 1 = active at that scrape. */
  timerActive: number[];
  rebootRequired: number[];
  load1PerCpu: number[];
  netErrors: number[]; // errors counted in each scrape interval
  /** Index of the patch (scrape). */
  patchAt: number;
  /** Series absent after the patch / baseline samples available. */
  missingAfterPatch: Set<string>;
  baselineSamples: number | null; // null: the full window
  truthBad: boolean;
}

const perMin = 60 / SCRAPE_S;
const TOTAL = (WARMUP_MIN + BASELINE_MIN + STABILISE_MIN + POST_MIN) * perMin + 1; // both ends inclusive
const PATCH_AT = (WARMUP_MIN + BASELINE_MIN) * perMin;
const clamp = (x: number, a: number, b: number) => Math.min(b, Math.max(a, x));

function simulateHost(rng: Rng, scenario: Scenario): Host {
  const noisy = scenario === 'noisy_unchanged' || rng.chance(0.3);
  // CPU: level, slow workload wander, fast noise, cron-like bursts.
  const level = rng.uniform(5, 45);
  const wander = ar1(rng, TOTAL, 300, noisy ? rng.uniform(3, 8) : rng.uniform(1, 4));
  const fastSd = noisy ? rng.uniform(5, 12) : rng.uniform(1, 5);
  const cpuBusy = new Array<number>(TOTAL);
  let burstLeft = 0;
  let burstHeight = 0;
  const cpuShift = scenario === 'cpu_within_allowed' ? rng.uniform(0.1, 0.7) * LIMITS.cpu_delta_percent : 0;
  for (let i = 0; i < TOTAL; i++) {
    if (burstLeft === 0 && rng.chance((noisy ? 1 / 15 : 1 / 40) / perMin)) {
      burstLeft = rng.int(2, 12);
      burstHeight = rng.uniform(20, 60);
    }
    const burst = burstLeft > 0 ? (burstLeft--, burstHeight) : 0;
    const shift = i >= PATCH_AT ? cpuShift : 0;
    cpuBusy[i] = clamp(level + wander[i]! + fastSd * rng.normal() + burst + shift, 0, 100);
  }
  // Memory: level, slow wander, small noise; a leak grows linearly from the patch.
  const memLevel = rng.uniform(20, 65);
  const memWander = ar1(rng, TOTAL, 600, noisy ? rng.uniform(0.5, 2.5) : rng.uniform(0.2, 1));
  const memNoise = rng.uniform(0.05, 0.4);
  const leak = scenario === 'memory_leak' || (scenario === 'just_started' && rng.chance(0.5));
  // mean excess over the post window = rate × (stabilise + post/2) minutes
  const leakRate = leak
    ? (rng.uniform(1.5, 3) * LIMITS.memory_delta_percent) / (STABILISE_MIN + POST_MIN / 2) / perMin
    : 0;
  const memUsed = Array.from({ length: TOTAL }, (_, i) =>
    clamp(
      memLevel + memWander[i]! + memNoise * rng.normal() + (i >= PATCH_AT ? leakRate * (i - PATCH_AT) : 0),
      0,
      99.5,
    ),
  );
  const baselineSamples = scenario === 'just_started' ? rng.int(0, 6) : null;
  if (baselineSamples !== null) {
    // Booted about a minute before Prometheus' first sample: boot CPU decays (τ 2 min), services
    // still starting fill memory over ~10 minutes.
    const bootAt = PATCH_AT - (baselineSamples + 1) * perMin;
    const bootCpu = rng.uniform(10, 40);
    const memShortfall = rng.uniform(3, 12);
    for (let i = Math.max(0, bootAt); i < TOTAL; i++) {
      const since = (i - bootAt) * SCRAPE_S;
      cpuBusy[i] = clamp(cpuBusy[i]! + bootCpu * Math.exp(-since / 120), 0, 100);
      memUsed[i] = clamp(memUsed[i]! - memShortfall * Math.exp(-since / 300), 0, 99.5);
    }
  }
  // Units: maybe one already failed; a timer service now and then; one failing after the patch.
  const preFailed = rng.chance(0.1) ? 1 : 0;
  const services = rng.int(20, 60);
  const timer = rng.chance(0.4);
  const failedUnits = new Array<number>(TOTAL).fill(preFailed);
  const runningServices = new Array<number>(TOTAL);
  const brokenUnit = new Array<number>(TOTAL).fill(0);
  const timerActive = new Array<number>(TOTAL).fill(0);
  let breaksAt = Infinity;
  let flapping = false;
  let failedFraction = 1;
  if (scenario === 'service_failure') {
    breaksAt = PATCH_AT + rng.int(0, 4 * perMin);
    flapping = rng.chance(0.4);
    failedFraction = flapping ? rng.uniform(0.3, 0.7) : 1;
  }
  let state = 0; // restart loop: 1 = failed
  for (let i = 0; i < TOTAL; i++) {
    let failedNow = 0;
    if (i >= breaksAt) {
      if (!flapping) failedNow = 1;
      else {
        // a two-state chain with mean failed stretch of ~1 min and the given failed fraction
        const pRecover = 1 / perMin;
        const pFail = (pRecover * failedFraction) / (1 - failedFraction);
        state = state === 1 ? (rng.chance(pRecover) ? 0 : 1) : rng.chance(pFail) ? 1 : 0;
        failedNow = state;
      }
    }
    brokenUnit[i] = failedNow;
    timerActive[i] = timer && rng.chance(0.05) ? 1 : 0;
    failedUnits[i] = preFailed + failedNow;
    runningServices[i] = services - failedNow + timerActive[i]!;
  }
  const rebootRequired = new Array<number>(TOTAL).fill(rng.chance(0.15) ? 1 : 0);
  // Load per CPU: exponentially damped (1-minute) run queue following CPU.
  const load1PerCpu = new Array<number>(TOTAL);
  let load = level / 100;
  const decay = Math.exp(-SCRAPE_S / 60);
  for (let i = 0; i < TOTAL; i++) {
    const runnable = Math.max(0, (cpuBusy[i]! / 100) * (1 + 0.3 * rng.normal()));
    load = load * decay + runnable * (1 - decay);
    load1PerCpu[i] = load;
  }
  // Network errors: a third of the hosts, at a wandering rate.
  const hasErrors = rng.chance(1 / 3);
  const baseRate = rng.uniform(0.01, 0.5);
  const rateWander = ar1(rng, TOTAL, 600, 0.3);
  const netErrors = Array.from({ length: TOTAL }, (_, i) =>
    hasErrors ? rng.poisson(baseRate * Math.exp(rateWander[i]!) * SCRAPE_S) : 0,
  );

  const missingAfterPatch = new Set<string>();
  if (scenario === 'metric_disappears') {
    const which = rng.int(0, 2);
    if (which === 0) missingAfterPatch.add('cpu');
    else if (which === 1) missingAfterPatch.add('memory');
    else missingAfterPatch.add('systemd');
  }
  const truthBad =
    scenario === 'memory_leak' || scenario === 'service_failure' || scenario === 'metric_disappears' || leak;
  return {
    cpuBusy,
    memUsed,
    failedUnits,
    runningServices,
    brokenUnit,
    timerActive,
    rebootRequired,
    load1PerCpu,
    netErrors,
    patchAt: PATCH_AT,
    missingAfterPatch,
    baselineSamples,
    truthBad,
  };
}

/* ------------------------------------------------------------------ what Prometheus returns */

/** rate() over [rangeS] at scrape index i, as the average of the intervals whose both samples fall in (t − range, t]. */
function rateAvg(series: readonly number[], i: number, rangeS: number): number | null {
  const k = Math.floor(rangeS / SCRAPE_S) - 1; // intervals between the samples inside the range
  if (k < 1 || i - k < 0) return null;
  let s = 0;
  for (let j = i - k + 1; j <= i; j++) s += series[j]!;
  return s / k;
}

/** max/min over the scrapes in (t − step, t]. */
function overStep(series: readonly number[], i: number, f: (...v: number[]) => number): number {
  return f(...series.slice(Math.max(0, i - STEP_S / SCRAPE_S + 1), i + 1));
}

function windows(h: Host): Record<string, Windows> {
  const stepIdx = STEP_S / SCRAPE_S;
  const baseStart = h.patchAt - BASELINE_MIN * perMin + stepIdx;
  const postStart = h.patchAt + STABILISE_MIN * perMin + stepIdx;
  const postEnd = h.patchAt + (STABILISE_MIN + POST_MIN) * perMin;
  const idx = (from: number, to: number) => {
    const r: number[] = [];
    for (let i = from; i <= to; i += stepIdx) r.push(i);
    return r;
  };
  let baseIdx = idx(baseStart, h.patchAt);
  if (h.baselineSamples !== null) baseIdx = baseIdx.slice(baseIdx.length - h.baselineSamples);
  const postIdx = idx(postStart, postEnd);
  const gone = (what: string) => h.missingAfterPatch.has(what);
  const w = (pick: (i: number) => number | null, missing: boolean): Windows => ({
    baseline: baseIdx.map(pick).filter((v): v is number => v !== null),
    post: missing ? [] : postIdx.map(pick).filter((v): v is number => v !== null),
  });
  return {
    cpu_busy_percent: w((i) => rateAvg(h.cpuBusy, i, STEP_S), gone('cpu')),
    memory_used_percent: w((i) => h.memUsed[i]!, gone('memory')),
    // count(max_over_time(…[60s]) == 1): a unit failed at any scrape of the step counts
    failed_units: w((i) => h.failedUnits[i]! - h.brokenUnit[i]! + overStep(h.brokenUnit, i, Math.max), gone('systemd')),
    // count(min_over_time(…[60s]) == 1): only services active at every scrape of the step
    running_services: w(
      (i) =>
        h.runningServices[i]! -
        h.timerActive[i]! +
        h.brokenUnit[i]! -
        overStep(h.brokenUnit, i, Math.max) +
        overStep(h.timerActive, i, Math.min),
      gone('systemd'),
    ),
    reboot_required: w((i) => h.rebootRequired[i]!, false),
    load1_per_cpu: w((i) => h.load1PerCpu[i]!, false),
    network_errors_per_second: w((i) => {
      const r = rateAvg(h.netErrors, i, STEP_S);
      return r === null ? null : r / SCRAPE_S;
    }, false),
  };
}

/* ------------------------------------------------------------------ today's instant rule */

/** `judge()` of src/services/judge.ts on one instant each side (checks with no data dropped). */
function oldRule(h: Host): 'pass' | 'fail' | 'inconclusive' {
  const postAt = h.patchAt + (STABILISE_MIN + POST_MIN) * perMin;
  const baseAt = h.patchAt;
  // A just-started host: with k baseline samples Prometheus has scraped about k minutes, so the
  // 5-minute rate covers what there is; with none, the baseline has no CPU or memory (issue 13's case).
  const k = h.baselineSamples;
  const cpuB = k === 0 ? null : rateAvg(h.cpuBusy, baseAt, k === null ? 300 : Math.min(300, k * STEP_S + SCRAPE_S));
  const cpuP = h.missingAfterPatch.has('cpu') ? null : rateAvg(h.cpuBusy, postAt, 300);
  const memB = k === 0 ? null : h.memUsed[baseAt]!;
  const memP = h.missingAfterPatch.has('memory') ? null : h.memUsed[postAt]!;
  const round = (x: number) => Math.round(x * 100) / 100;
  const checks: (boolean | null)[] = [
    cpuB === null || cpuP === null ? null : round(cpuP - cpuB) <= LIMITS.cpu_delta_percent,
    memB === null || memP === null ? null : round(memP - memB) <= LIMITS.memory_delta_percent,
    // Salt's service.status at both instants: units active at baseline and not now (Salt answers even without the systemd collector).
    Math.max(0, h.failedUnits[postAt]! - h.failedUnits[baseAt]!) <= LIMITS.max_failed_services,
  ];
  if (checks.some((c) => c === false)) return 'fail';
  if (checks[2] === null) return 'inconclusive';
  return 'pass';
}

/* ------------------------------------------------------------------ run */

type NewV = CanaryVerdictKind;
type OldV = 'pass' | 'fail' | 'inconclusive';
interface Row {
  scenario: Scenario;
  truth: 'good' | 'bad';
  newV: Record<NewV, number>;
  oldV: Record<OldV, number>;
}

const metrics = defaultCanaryMetrics(LIMITS);
const rows = new Map<string, Row>();
const t0 = performance.now();
const rng = new Rng(SEED);
let tests = 0;
/** The same tests judged with the serial-correlation correction on, to show what it costs. */
const variant = { good: 0, goodFail: 0, goodHuman: 0, bad: 0, badPass: 0 };
for (const scenario of SCENARIOS) {
  for (let t = 0; t < N; t++) {
    const h = simulateHost(rng, scenario);
    const ws = windows(h);
    const verdict = judgeCanary(metrics, ws);
    const v = verdict.verdict;
    if (
      EXPLAIN &&
      ((h.truthBad && v === 'pass' && explained.pass++ < 5) ||
        (!h.truthBad && v === 'fail' && explained.fail++ < 5) ||
        (!h.truthBad && v === 'marginal' && explained.marginal++ < 5))
    ) {
      console.log(`[${scenario}, truth ${h.truthBad ? 'bad' : 'good'}, verdict ${v}, score ${verdict.score}]`);
      for (const m of verdict.metrics) console.log(`  ${m.classification.padEnd(7)} ${m.why}`);
    }
    const o = oldRule(h);
    const raw = judgeCanary(metrics, ws, { serialCorrelation: true }).verdict;
    if (h.truthBad) {
      variant.bad++;
      if (raw === 'pass') variant.badPass++;
    } else {
      variant.good++;
      if (raw === 'fail') variant.goodFail++;
      if (raw !== 'pass') variant.goodHuman++;
    }
    const truth = h.truthBad ? 'bad' : 'good';
    const key = `${scenario}|${truth}`;
    const row = rows.get(key) ?? {
      scenario,
      truth,
      newV: { pass: 0, marginal: 0, fail: 0, inconclusive: 0 },
      oldV: { pass: 0, fail: 0, inconclusive: 0 },
    };
    row.newV[v]++;
    row.oldV[o]++;
    rows.set(key, row);
    tests++;
  }
}
const seconds = (performance.now() - t0) / 1000;

const pad = (s: string | number, w: number) => String(s).padStart(w);
console.log(`bench:judge — ${N} simulated tests per scenario, seed ${SEED}, ${seconds.toFixed(1)} s`);
console.log(
  `windows: baseline ${BASELINE_MIN} min, stabilise ${STABILISE_MIN} min, post ${POST_MIN} min; scrape ${SCRAPE_S} s, step ${STEP_S} s; limits cpu ${LIMITS.cpu_delta_percent} / memory ${LIMITS.memory_delta_percent} points, failed units ${LIMITS.max_failed_services}\n`,
);
console.log(
  `${'scenario'.padEnd(20)} ${'truth'.padEnd(5)} | new: ${pad('pass', 5)} ${pad('marg', 5)} ${pad('fail', 5)} ${pad('inc', 5)} | old: ${pad('pass', 5)} ${pad('fail', 5)} ${pad('inc', 5)}`,
);
const totals = { newBad: 0, newBadPass: 0, newGood: 0, newGoodFail: 0, newGoodHuman: 0, oldBadPass: 0, oldGoodFail: 0 };
const all = {
  good: { pass: 0, marginal: 0, fail: 0, inconclusive: 0 },
  bad: { pass: 0, marginal: 0, fail: 0, inconclusive: 0 },
};
const allOld = { good: { pass: 0, fail: 0, inconclusive: 0 }, bad: { pass: 0, fail: 0, inconclusive: 0 } };
for (const r of [...rows.values()].sort(
  (a, b) => SCENARIOS.indexOf(a.scenario) - SCENARIOS.indexOf(b.scenario) || a.truth.localeCompare(b.truth),
)) {
  console.log(
    `${r.scenario.padEnd(20)} ${r.truth.padEnd(5)} |      ${pad(r.newV.pass, 5)} ${pad(r.newV.marginal, 5)} ${pad(r.newV.fail, 5)} ${pad(r.newV.inconclusive, 5)} |      ${pad(r.oldV.pass, 5)} ${pad(r.oldV.fail, 5)} ${pad(r.oldV.inconclusive, 5)}`,
  );
  const n = r.newV.pass + r.newV.marginal + r.newV.fail + r.newV.inconclusive;
  for (const k of ['pass', 'marginal', 'fail', 'inconclusive'] as const) all[r.truth][k] += r.newV[k];
  for (const k of ['pass', 'fail', 'inconclusive'] as const) allOld[r.truth][k] += r.oldV[k];
  if (r.truth === 'bad') {
    totals.newBad += n;
    totals.newBadPass += r.newV.pass;
    totals.oldBadPass += r.oldV.pass;
  } else {
    totals.newGood += n;
    totals.newGoodFail += r.newV.fail;
    totals.newGoodHuman += r.newV.marginal + r.newV.inconclusive;
    totals.oldGoodFail += r.oldV.fail;
  }
}
console.log('\nconfusion matrix, all scenarios (rows: truth, columns: verdict)');
console.log(`  new judge   ${pad('pass', 6)} ${pad('marg', 6)} ${pad('fail', 6)} ${pad('inc', 6)}`);
for (const t of ['good', 'bad'] as const)
  console.log(
    `  ${t.padEnd(10)}  ${pad(all[t].pass, 6)} ${pad(all[t].marginal, 6)} ${pad(all[t].fail, 6)} ${pad(all[t].inconclusive, 6)}`,
  );
console.log(`  old rule    ${pad('pass', 6)} ${pad('fail', 6)} ${pad('inc', 6)}`);
for (const t of ['good', 'bad'] as const)
  console.log(
    `  ${t.padEnd(10)}  ${pad(allOld[t].pass, 6)} ${pad(allOld[t].fail, 6)} ${pad(allOld[t].inconclusive, 6)}`,
  );
const rate = (a: number, b: number) => (b === 0 ? 0 : a / b).toFixed(4);
console.log(`\ngood tests sent to a human (marginal or inconclusive): ${rate(totals.newGoodHuman, totals.newGood)}`);
console.log(
  `with the serial-correlation correction (serialCorrelation: true): false_pass_rate=${rate(variant.badPass, variant.bad)} false_fail_rate=${rate(variant.goodFail, variant.good)} good tests not passed=${rate(variant.goodHuman, variant.good)}`,
);
console.log(
  `bench:judge: tests=${tests} false_pass_rate=${rate(totals.newBadPass, totals.newBad)} false_fail_rate=${rate(totals.newGoodFail, totals.newGood)} old_false_pass_rate=${rate(totals.oldBadPass, totals.newBad)} old_false_fail_rate=${rate(totals.oldGoodFail, totals.newGood)}`,
);
