/**
 * The lab world: one simulated fleet behind the three servers the orchestrator talks to —
 * UYUNI (XML-RPC), the Salt API, and one node_exporter-style `/metrics` endpoint per system, which a
 * real Prometheus scrapes. They share the systems' state, so what UYUNI applies is what Salt sees
 * and what the metrics show:
 *
 * - a completed Patch Update action sets the errata's package versions on the minion and switches
 *   on the errata's scenario (break a service, raise CPU or memory, leak memory slowly, take a
 *   metric away from the exporter, require a reboot);
 * - host knobs (`host()`): a noisy host (CPU and memory noise per scrape), and a system that
 *   Prometheus does not scrape yet (its exporter does not answer while Salt does);
 * - a System reboot action takes the minion away for `rebootMs` (for ever for a "never returns"
 *   errata), clears reboot-required, and boots into a pending `snapper rollback`;
 * - Salt `pkg.install` of the old versions (package rollback) switches the errata's effects off.
 *
 * Effects received are counted by key (`apply|system|advisory`, `reboot|system`, Salt's snapshot /
 * pkg_install / snapper_rollback keys) so that tests can assert "exactly once".
 * Never imported by production code (src/lab).
 */
import type { LabHealthcheck } from './saltStates.ts';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateFleet, type Fleet, type FleetSpec, type LabErrata, type LabSystem } from './fleet.ts';
import {
  cpuPercent,
  droppedMetrics,
  LabSalt,
  memPercent,
  newMinion,
  serviceActive,
  touchCpu,
  type LabMinion,
} from './salt.ts';
import { LabUyuni, type LabUyuniOptions } from './uyuni.ts';

/** What applying an errata does to a system (scenario knobs). */
export interface LabScenario {
  /** This unit fails once the errata is applied. */
  breaksService?: string;
  /** This team health check (pillar spm:healthchecks) fails once the errata is applied. */
  breaksHealthcheck?: string;
  cpuRaisePercent?: number;
  memRaisePercent?: number;
  /** A slow memory leak: used memory grows by this many points per minute (real time) from the apply on. */
  memLeakPercentPerMinute?: number;
  /** Metric families the exporter stops exposing once applied (e.g. `node_memory_MemAvailable_bytes`). */
  dropsMetrics?: string[];
  /** Reboot required after applying (default: the errata touches a kernel). */
  reboot?: boolean;
  /** The UYUNI action fails. */
  failApply?: boolean;
  /** The UYUNI action is picked up and never finishes. */
  hang?: boolean;
  /** The UYUNI action is never picked up (the minion does not check in): it stays Queued. */
  neverPickedUp?: boolean;
  /** After a reboot the host never comes back. */
  noReturn?: boolean;
  /** Fails on these systems only (production waves); default all. */
  onlySystems?: number[];
}

const SERVICES: Record<LabSystem['os'], string[]> = {
  ubuntu: ['ssh.service', 'cron.service', 'nginx.service'],
  debian: ['ssh.service', 'cron.service', 'nginx.service'],
  rhel: ['sshd.service', 'crond.service', 'httpd.service'],
};

/** What a system is like, whatever is applied to it (see `LabWorld.host`). */
export interface LabHostKnobs {
  /** Standard deviation of the busy CPU in points, drawn at every scrape (a noisy host). */
  cpuNoisePercent?: number;
  /** Standard deviation of the used memory in points, per scrape. */
  memNoisePercent?: number;
  /** Prometheus does not scrape the system (yet): its exporter drops the connection; Salt still answers. */
  unscraped?: boolean;
  /** Busy CPU (0–1) and used memory (0–1) without errata effects. */
  baseCpu?: number;
  baseMem?: number;
  /** How far the host's wall clock is off (ms; negative: behind), as its `status.uptime` shows. */
  clockOffsetMs?: number;
  /** Used fraction of its root filesystem without snapshots (each snapshot adds 1 %). */
  diskUsedRatio?: number;
  /** Its pillar `spm:healthchecks` (replaces the whole mapping). */
  healthchecks?: Record<string, LabHealthcheck>;
}

export interface LabWorldOptions extends LabUyuniOptions {
  /** How long a rebooting system is away (ms). */
  rebootMs?: number;
}

export class LabWorld {
  readonly fleet: Fleet;
  readonly uyuni: LabUyuni;
  readonly salt: LabSalt;
  readonly scenarios = new Map<string, LabScenario>();
  /** Effects received through UYUNI, by key. */
  readonly effects = new Map<string, number>();
  private readonly errataById: Map<number, LabErrata>;
  private readonly systemById: Map<number, LabSystem>;
  private metricsServer: Server | undefined;
  private urls: { uyuni: string; salt: string; metrics: string } | undefined;

  constructor(spec: FleetSpec | Fleet, opts: LabWorldOptions = {}) {
    this.fleet = 'seed' in spec ? generateFleet(spec) : spec;
    this.uyuni = new LabUyuni(this.fleet, opts);
    this.salt = new LabSalt([]);
    this.salt.rebootMs = opts.rebootMs ?? 1500;
    this.errataById = new Map(this.fleet.errata.map((e) => [e.id, e]));
    this.systemById = new Map(this.fleet.systems.map((s) => [s.id, s]));
    for (const sys of this.fleet.systems) {
      // Installed: every package its relevant errata update, at an older build.
      const pkgs = new Map<string, string>();
      for (const id of sys.relevant)
        for (const p of this.errataById.get(id)!.packages) pkgs.set(p.name, `0.9-${sys.os === 'rhel' ? 'el9' : '1'}`);
      const m = newMinion(sys.name, SERVICES[sys.os], [...pkgs]);
      m.baseCpu = 0.08 + (sys.id % 7) / 100;
      this.salt.minions.set(sys.name, m);
    }
    this.uyuni.packagesOf = (sid) => {
      const m = this.minionOf(sid);
      return [...m.packages].map(([name, v]) => {
        const [version, release] = v.split('-');
        return { name, version: version ?? v, release: release ?? '', epoch: '', arch: 'x86_64' };
      });
    };
    this.uyuni.rebootRunMs = (sid) => (this.noReturnPending.has(sid) ? Infinity : this.salt.rebootMs);
    this.uyuni.onAction.push((ev) => this.onAction(ev));
  }

  /** Systems whose next reboot never ends (a "never returns" errata was applied). */
  private readonly noReturnPending = new Set<number>();

  minionOf(sid: number): LabMinion {
    const sys = this.systemById.get(sid);
    if (!sys) throw new Error(`lab: no system ${sid}`);
    return this.salt.minions.get(sys.name)!;
  }
  system(name: string): LabSystem {
    const s = this.fleet.systems.find((x) => x.name === name);
    if (!s) throw new Error(`lab: no system named ${name}`);
    return s;
  }
  errata(name: string): LabErrata {
    const e = this.fleet.errata.find((x) => x.advisoryName === name);
    if (!e) throw new Error(`lab: no errata ${name}`);
    return e;
  }

  /**
   * Set what a system is like (noise, whether Prometheus scrapes it). Knobs not given are kept.
   * @example world.host('web-001.lab', { cpuNoisePercent: 6, memNoisePercent: 1 });
   */
  host(name: string, knobs: LabHostKnobs): void {
    const m = this.salt.minions.get(name);
    if (!m) throw new Error(`lab: no system named ${name}`);
    touchCpu(m);
    if (knobs.cpuNoisePercent !== undefined) m.cpuNoisePercent = knobs.cpuNoisePercent;
    if (knobs.memNoisePercent !== undefined) m.memNoisePercent = knobs.memNoisePercent;
    if (knobs.unscraped !== undefined) m.unscraped = knobs.unscraped;
    if (knobs.baseCpu !== undefined) m.baseCpu = knobs.baseCpu;
    if (knobs.baseMem !== undefined) m.baseMem = knobs.baseMem;
    if (knobs.clockOffsetMs !== undefined) m.clockOffsetMs = knobs.clockOffsetMs;
    if (knobs.healthchecks !== undefined) m.healthchecks = { ...knobs.healthchecks };
    if (knobs.diskUsedRatio !== undefined) m.diskBaseUsedRatio = knobs.diskUsedRatio;
  }

  /** Set what an errata does when applied. */
  scenario(advisory: string, sc: LabScenario): void {
    this.errata(advisory);
    this.scenarios.set(advisory, sc);
    if (sc.failApply) this.uyuni.failApply.set(advisory, new Set(sc.onlySystems ?? []));
    else this.uyuni.failApply.delete(advisory);
    if (sc.hang) this.uyuni.hangApply.add(advisory);
    else this.uyuni.hangApply.delete(advisory);
    if (sc.neverPickedUp) this.uyuni.queuedApply.add(advisory);
    else this.uyuni.queuedApply.delete(advisory);
  }

  private count(key: string): void {
    this.effects.set(key, (this.effects.get(key) ?? 0) + 1);
  }

  private onAction(ev: {
    id: number;
    type: string;
    errataIds: number[];
    packageIds: number[];
    systemId: number;
    outcome: string;
  }): void {
    const m = this.minionOf(ev.systemId);
    if (ev.type === 'System reboot' && ev.outcome === 'picked_up') {
      this.count(`reboot|${ev.systemId}`);
      const never = this.noReturnPending.has(ev.systemId);
      this.salt.reboot(m, never);
      return;
    }
    if (ev.type === 'Patch Update' && ev.outcome === 'picked_up') {
      for (const id of ev.errataIds) this.count(`apply|${ev.systemId}|${this.errataById.get(id)!.advisoryName}`);
      return;
    }
    if (ev.type === 'Patch Update' && ev.outcome === 'completed') {
      touchCpu(m);
      for (const id of ev.errataIds) {
        const e = this.errataById.get(id)!;
        const sc = this.scenarios.get(e.advisoryName) ?? {};
        const hits = sc.onlySystems === undefined || sc.onlySystems.includes(ev.systemId);
        const pkgs = new Map(e.packages.map((p) => [p.name, `${p.version}-${p.release}`]));
        for (const [name, v] of pkgs) m.packages.set(name, v);
        m.applied.push({
          advisory: e.advisoryName,
          packages: pkgs,
          breaksService: hits ? (sc.breaksService ?? null) : null,
          breaksHealthcheck: hits ? (sc.breaksHealthcheck ?? null) : null,
          cpuRaisePercent: hits ? (sc.cpuRaisePercent ?? 0) : 0,
          memRaisePercent: hits ? (sc.memRaisePercent ?? 0) : 0,
          memLeakPercentPerMinute: hits ? (sc.memLeakPercentPerMinute ?? 0) : 0,
          dropsMetrics: hits ? (sc.dropsMetrics ?? []) : [],
          appliedAt: Date.now(),
        });
        if (sc.reboot ?? e.rebootSuggested) m.rebootRequired = true;
        if (sc.noReturn && hits) this.noReturnPending.add(ev.systemId);
      }
    }
    if (ev.type === 'Package Install' && ev.outcome === 'completed') {
      this.count(`package_install|${ev.systemId}|${ev.packageIds.join(',')}`);
    }
  }

  /**
   * Effects that must happen at most once and happened more: an errata applied twice to one system,
   * two snapshots with one effect key, a snapshot rolled back to twice. Reboots and package
   * installs legitimately repeat across tests: assert their counts with `countOf`.
   */
  duplicates(): { key: string; count: number }[] {
    const out: { key: string; count: number }[] = [];
    for (const map of [this.effects, this.salt.effects]) {
      for (const [key, count] of map)
        if (count > 1 && /^(apply|snapshot|snapper_rollback)\|/.test(key)) out.push({ key, count });
    }
    return out;
  }
  countOf(prefix: string): number {
    let n = 0;
    for (const map of [this.effects, this.salt.effects])
      for (const [key, count] of map) if (key.startsWith(prefix)) n += count;
    return n;
  }

  /**
   * node_exporter text exposition for one system (the metrics the orchestrator queries), as at a
   * scrape: a noisy host's CPU and memory draw their noise here; families an applied errata took
   * away are left out.
   */
  metricsText(m: LabMinion): string {
    const now = Date.now();
    touchCpu(m, now, true);
    const dropped = droppedMetrics(m);
    const memTotal = 8 * 1024 ** 3;
    const lines: string[] = [];
    const family = (name: string, help: string, type: string, samples: string[]) => {
      if (dropped.has(name)) return;
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...samples);
    };
    const cpus = ['0', '1'];
    family(
      'node_cpu_seconds_total',
      'Seconds the CPUs spent in each mode.',
      'counter',
      cpus.flatMap((cpu) => [
        `node_cpu_seconds_total{cpu="${cpu}",mode="idle"} ${m.cpuIdle.toFixed(3)}`,
        `node_cpu_seconds_total{cpu="${cpu}",mode="user"} ${(m.cpuBusy * 0.8).toFixed(3)}`,
        `node_cpu_seconds_total{cpu="${cpu}",mode="system"} ${(m.cpuBusy * 0.2).toFixed(3)}`,
      ]),
    );
    family('node_load1', '1m load average.', 'gauge', [
      `node_load1 ${((cpus.length * cpuPercent(m)) / 100).toFixed(3)}`,
    ]);
    family('node_memory_MemTotal_bytes', 'Memory information field MemTotal_bytes.', 'gauge', [
      `node_memory_MemTotal_bytes ${memTotal}`,
    ]);
    family('node_memory_MemAvailable_bytes', 'Memory information field MemAvailable_bytes.', 'gauge', [
      `node_memory_MemAvailable_bytes ${Math.round(memTotal * (1 - memPercent(m, now, true) / 100))}`,
    ]);
    family('node_network_receive_errs_total', 'Network device statistic receive_errs.', 'counter', [
      'node_network_receive_errs_total{device="eth0"} 0',
      'node_network_receive_errs_total{device="lo"} 0',
    ]);
    family('node_network_transmit_errs_total', 'Network device statistic transmit_errs.', 'counter', [
      'node_network_transmit_errs_total{device="eth0"} 0',
      'node_network_transmit_errs_total{device="lo"} 0',
    ]);
    family(
      'node_systemd_unit_state',
      'Systemd unit',
      'gauge',
      [...m.services.keys()].flatMap((name) => {
        const current = serviceActive(m, name) ? 'active' : 'failed';
        return ['activating', 'active', 'deactivating', 'failed', 'inactive'].map(
          (state) =>
            `node_systemd_unit_state{name="${name}",state="${state}",type="simple"} ${state === current ? 1 : 0}`,
        );
      }),
    );
    family('node_reboot_required', 'Node reboot is required for software updates.', 'gauge', [
      `node_reboot_required ${m.rebootRequired ? 1 : 0}`,
    ]);
    family('node_boot_time_seconds', 'Node boot time, in unixtime.', 'gauge', [
      `node_boot_time_seconds ${Math.floor((m.bootTime + m.clockOffsetMs) / 1000)}`,
    ]);
    return `${lines.join('\n')}\n`;
  }

  /** CPU and memory the metrics show now (tests compare with what the judge saw). */
  load(name: string): { cpu: number; mem: number } {
    const m = this.salt.minions.get(name)!;
    return { cpu: cpuPercent(m), mem: memPercent(m) };
  }

  /** Start the three servers. The metrics of system `name` are at `<metrics>/systems/<name>/metrics`; a system that is down does not answer. */
  async start(): Promise<{ uyuni: string; salt: string; metrics: string }> {
    const uyuni = await this.uyuni.serve();
    const salt = await this.salt.serve();
    this.metricsServer = createServer((req, res) => {
      const match = /^\/systems\/([^/]+)\/metrics$/.exec(req.url ?? '');
      const m = match ? this.salt.minions.get(decodeURIComponent(match[1]!)) : undefined;
      if (!m) {
        res.writeHead(404).end('not found\n');
        return;
      }
      if (!this.salt.isUp(m) || m.unscraped) {
        req.socket.destroy(); // a host that is down does not answer its exporter either
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metricsText(m));
    });
    await new Promise<void>((resolve) => this.metricsServer!.listen(0, '127.0.0.1', () => resolve()));
    const metrics = `http://127.0.0.1:${(this.metricsServer.address() as AddressInfo).port}`;
    this.urls = { uyuni, salt, metrics };
    return this.urls;
  }

  /**
   * A Prometheus scrape configuration for the given systems (default: all): one target per system
   * with `instance` = the system's name, as a node_exporter per host would be labelled by
   * relabelling, in the jobs of prometheus/prometheus.yml — `patch-test-systems` for the test
   * groups, `production-systems` for the others — so the rules' `job=` filters (TestSystemDown,
   * ServiceFailedAfterPatch) match the lab as they match a real site.
   */
  prometheusConfig(opts: { systems?: string[]; scrapeIntervalS?: number; ruleFiles?: string[] } = {}): string {
    if (!this.urls) throw new Error('lab world not started');
    const host = new URL(this.urls.metrics).host;
    const names = opts.systems ?? this.fleet.systems.map((s) => s.name);
    const isTest = new Set(this.fleet.systems.filter((s) => s.group.startsWith('test-')).map((s) => s.name));
    const targets = (list: string[]) =>
      list
        .map(
          (n) =>
            `      - targets: ['${host}']\n        labels: { instance: '${n}', __metrics_path__: '/systems/${encodeURIComponent(n)}/metrics' }`,
        )
        .join('\n');
    // Milliseconds: Prometheus durations are integers with a unit (0.5 s is `500ms`).
    const interval = `${Math.round((opts.scrapeIntervalS ?? 1) * 1000)}ms`;
    const timeout = `${Math.round((opts.scrapeIntervalS ?? 1) * 800)}ms`;
    const rules =
      opts.ruleFiles && opts.ruleFiles.length > 0
        ? `rule_files:\n${opts.ruleFiles.map((f) => `  - '${f}'`).join('\n')}\n`
        : '';
    const jobs = [
      ['patch-test-systems', names.filter((n) => isTest.has(n))],
      ['production-systems', names.filter((n) => !isTest.has(n))],
    ] as const;
    const scrape = jobs
      .filter(([, list]) => list.length > 0)
      .map(
        ([job, list]) =>
          `  - job_name: ${job}\n    scrape_timeout: ${timeout}\n    static_configs:\n${targets([...list])}\n`,
      )
      .join('');
    return `global:\n  scrape_interval: ${interval}\n  evaluation_interval: ${interval}\n${rules}scrape_configs:\n${scrape}`;
  }

  async stop(): Promise<void> {
    await this.uyuni.close();
    await this.salt.close();
    await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
  }
}
