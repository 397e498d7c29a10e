/**
 * The lab's minion model (packages, services, applied errata and their effects) and its metric
 * helpers (CPU, memory, dropped metric families), shared by the lab Salt API and exporter.
 * Never imported by production code (src/lab).
 */
import { prng, seedOf } from '../random.ts';
import type { LabHealthcheck } from './saltStates.ts';

/** An errata applied to a minion and what it does while any of its packages is at the new version. */
export interface LabApplied {
  advisory: string;
  packages: Map<string, string>;
  breaksService: string | null;
  cpuRaisePercent: number;
  memRaisePercent: number;
  /** A slow memory leak: used memory grows by this many points per minute since `appliedAt`. */
  memLeakPercentPerMinute?: number;
  /** Metric families the exporter stops exposing while the errata is active (a collector that breaks). */
  dropsMetrics?: string[];
  /** When the apply completed (epoch ms). */
  appliedAt?: number;
  /** A team health check (pillar spm:healthchecks) that fails while the errata is active. */
  breaksHealthcheck?: string | null;
}

export interface LabMinion {
  id: string;
  up: boolean;
  /** Back at this time after a reboot (epoch ms); Infinity: never. */
  downUntil: number;
  /** Configured services (true = enabled, expected active). */
  services: Map<string, boolean>;
  packages: Map<string, string>;
  snapshots: {
    id: number;
    type: string;
    description: string;
    timestamp: number;
    userdata: Record<string, string>;
    state: { packages: Map<string, string>; applied: LabApplied[] };
  }[];
  rebootRequired: boolean;
  applied: LabApplied[];
  /** Snapshot to boot into at the next reboot (`snapper rollback N`). */
  pendingRollback: number | null;
  /** Busy CPU fraction (0–1) and used memory fraction without errata effects. */
  baseCpu: number;
  baseMem: number;
  /** Idle CPU seconds accumulated up to `cpuAt` (per CPU; 2 CPUs). */
  cpuIdle: number;
  cpuBusy: number;
  cpuAt: number;
  /** When it booted (true time, ms). */
  bootTime: number;
  /** Its wall clock minus the true time (ms): a host whose clock is behind has a negative offset. */
  clockOffsetMs: number;
  /** Used fraction of its root filesystem without snapshots; each snapper snapshot adds 1 % (`disk.usage`). */
  diskBaseUsedRatio: number;
  /** Its pillar `spm:healthchecks`: the team checks `state.apply spm.healthcheck` runs. */
  healthchecks: Record<string, LabHealthcheck>;
  /**
   * Host knobs for the window judge (issue 13): standard deviation, in points, of the busy CPU
   * (drawn afresh at every scrape and held until the next) and of the used memory (per scrape) —
   * a noisy host; and `unscraped`: the exporter does not answer (Prometheus does not scrape the
   * system yet) while Salt does.
   */
  cpuNoisePercent: number;
  memNoisePercent: number;
  unscraped: boolean;
  /** The CPU noise held since the last scrape, in points. */
  cpuNoiseNow: number;
  noise: () => number;
}

/** Errata effects active now: an applied errata acts while one of its packages is still at its version. */
export function activeEffects(m: LabMinion): LabApplied[] {
  return m.applied.filter((a) => [...a.packages].some(([name, v]) => m.packages.get(name) === v));
}
export function serviceActive(m: LabMinion, name: string): boolean {
  return (m.services.get(name) ?? false) && !activeEffects(m).some((a) => a.breaksService === name);
}
export function cpuPercent(m: LabMinion): number {
  return Math.min(
    100,
    Math.max(0, m.baseCpu * 100 + m.cpuNoiseNow + activeEffects(m).reduce((s, a) => s + a.cpuRaisePercent, 0)),
  );
}
/** Used memory now: base, errata raises, leaks (`now`: for the leak), and `noisy` adds the host's per-scrape noise. */
export function memPercent(m: LabMinion, now = Date.now(), noisy = false): number {
  const effects = activeEffects(m).reduce(
    (s, a) =>
      s + a.memRaisePercent + ((a.memLeakPercentPerMinute ?? 0) * Math.max(0, now - (a.appliedAt ?? now))) / 60_000,
    0,
  );
  const noise = noisy && m.memNoisePercent > 0 ? m.memNoisePercent * gaussian(m.noise) : 0;
  return Math.min(99, Math.max(1, m.baseMem * 100 + effects + noise));
}
/** Metric families an active errata has taken away. */
export function droppedMetrics(m: LabMinion): Set<string> {
  return new Set(activeEffects(m).flatMap((a) => a.dropsMetrics ?? []));
}
/** A standard normal draw (Box–Muller) from a uniform source. */
export function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}
/**
 * Bring the CPU counters up to now before the load changes (counters integrate the load over time);
 * `redraw`: a scrape — a noisy host draws the CPU noise for the next interval.
 */
export function touchCpu(m: LabMinion, now = Date.now(), redraw = false): void {
  const dt = Math.max(0, now - m.cpuAt) / 1000;
  const busy = cpuPercent(m) / 100;
  m.cpuIdle += dt * (1 - busy);
  m.cpuBusy += dt * busy;
  m.cpuAt = now;
  if (redraw) m.cpuNoiseNow = m.cpuNoisePercent > 0 ? m.cpuNoisePercent * gaussian(m.noise) : 0;
}

/** The same host draws the same noise sequence. */
const seededRandom = (id: string) => prng(seedOf(id));

export function newMinion(id: string, services: string[], packages: [string, string][]): LabMinion {
  return {
    id,
    up: true,
    downUntil: 0,
    services: new Map(services.map((s) => [s, true])),
    packages: new Map(packages),
    snapshots: [],
    rebootRequired: false,
    applied: [],
    pendingRollback: null,
    baseCpu: 0.1,
    baseMem: 0.35,
    cpuIdle: 0,
    cpuBusy: 0,
    cpuAt: Date.now(),
    // Up for days, as a fleet is: a reboot shows as an uptime shorter than the time since its request.
    bootTime: Date.now() - 3 * 86_400_000,
    clockOffsetMs: 0,
    healthchecks: {},
    diskBaseUsedRatio: 0.35,
    cpuNoisePercent: 0,
    memNoisePercent: 0,
    unscraped: false,
    cpuNoiseNow: 0,
    noise: seededRandom(id),
  };
}
