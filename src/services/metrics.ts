/**
 * The orchestrator's Prometheus metrics (docs/metrics.md: the names are a contract with
 * prometheus/rules and grafana/): prom-client's process metrics plus the `spm_*` series, in a
 * registry of this daemon's own (several daemons in one test process do not collide).
 *
 * Where each figure comes from:
 * - **At scrape time, from the database** (persistence/sql/metrics.ts, one connection, a handful of
 *   aggregates, shared by concurrent scrapes): entries and deployments per status, pending
 *   approvals and the oldest one's age, the outbox depth and failed deliveries, the last
 *   successful sync, and the sync runs (counted and timed from `sync_runs` as they finish). These
 *   are the same on every replica: aggregate them with `max`.
 * - **At scrape time, from this process**: actors in memory and fenced writes (the actor host),
 *   lanes busy (the test lanes).
 * - **Where things happen** (per replica, reset at restart): effects run, with their duration, by
 *   wrapping the effect ports (`instrumentPorts`), HTTP requests (http/requestMetrics.ts), and
 *   committed transitions through the {@link MetricsSink} the actor host is given.
 * - `spm_snapshot_space_used_ratio{system}`: the snapshot cleanup (the replica that leads it)
 *   measures each configured test system every round through Salt's `disk.usage`; absent until then.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../persistence/db.ts';
import {
  countDeploymentsPerStatus,
  countEntriesPerStatus,
  listSyncRunsAfter,
  readLastSyncSuccess,
  readNotificationOutbox,
  readPendingApprovalAge,
} from '../persistence/sql/metrics.ts';
import { stepOfEffectKey } from '../machines/effectKey.ts';
import type { PatchPorts } from '../machines/effects.ts';
import { STATUSES } from '../machines/patch.machine.ts';
import { isTransient } from '../transient.ts';

export type EffectOutcome = 'succeeded' | 'failed' | 'transient';

/**
 * What the parts that do the work report. The actor host calls `transitionsCommitted` after each
 * committed write; the effect ports are wrapped by `instrumentPorts`, which calls `effectFinished`.
 */
export interface MetricsSink {
  /** `count` journal rows (transitions) of one entry were committed by this replica. */
  transitionsCommitted(count: number): void;
  /** An effect ran to an outcome in `seconds` (`effect`: the step, e.g. `snapshot`, `apply`). */
  effectFinished(effect: string, outcome: EffectOutcome, seconds: number): void;
  /** The used fraction (0–1) of a system's snapshot storage, when the engine measures it. */
  snapshotSpace(system: string, usedRatio: number): void;
}

/** A sink that records nothing (tests, tools). */
export const NO_METRICS: MetricsSink = { transitionsCommitted() {}, effectFinished() {}, snapshotSpace() {} };

/** What is read from this process at scrape time; attached once the parts exist. */
export interface ProcessSources {
  actors?: { readonly size: number; readonly fencedRejections: number } | undefined;
  lanes?: { states(): { entryId: number | null }[] } | undefined;
}

export const DEPLOYMENT_STATUSES = [
  'pending',
  'scheduled',
  'in_progress',
  'completed',
  'partial_failure',
  'halted',
  'failed',
  'rolled_back',
] as const;
export const NOTIFICATION_CHANNELS = ['email', 'webhook'] as const;
const SYNC_OUTCOMES = ['completed', 'failed'] as const;

/**
 * The effect label: the step without its operator round or its wave/plan/approval-round numbers
 * (`deploy_wave_1_plan0#2` → `deploy_wave`), so the label's values stay a short fixed list.
 * @example effectLabel('7:p1:deploy_wave_2_plan1') // 'deploy_wave'
 */
export function effectLabel(key: string): string {
  return stepOfEffectKey(key)
    .replace(/#\d+$/, '')
    .replace(/_(?:plan)?\d+/g, '');
}

/**
 * Wrap the effect ports so that every run of an effect (not a recorded result replayed, not a
 * reconciliation) is counted by outcome and timed. The outcome uses the runner's own rule:
 * transient when `isTransient` says so (the entry goes to `pending_retry`), else failed.
 * @example const ports = instrumentPorts(createEnginePorts(...), metrics);
 */
export function instrumentPorts(ports: PatchPorts, sink: MetricsSink): PatchPorts {
  const wrapped: Record<string, unknown> = { reconcile: ports.reconcile.bind(ports) };
  for (const [name, fn] of Object.entries(ports)) {
    if (name === 'reconcile' || typeof fn !== 'function') continue;
    wrapped[name] = async (input: { key: string }, signal: AbortSignal) => {
      const t0 = performance.now();
      const label = effectLabel(input.key);
      try {
        const out = await (fn as (i: unknown, s: AbortSignal) => Promise<unknown>).call(ports, input, signal);
        sink.effectFinished(label, 'succeeded', (performance.now() - t0) / 1000);
        return out;
      } catch (raw) {
        // An aborted run (the actor was let go) has no outcome.
        if (!signal.aborted)
          sink.effectFinished(label, isTransient(raw) ? 'transient' : 'failed', (performance.now() - t0) / 1000);
        throw raw;
      }
    };
  }
  return wrapped as unknown as PatchPorts;
}

export interface OrchestratorMetricsOptions {
  db: Db;
  logger: Logger;
  /** Off in tests that build many registries (prom-client's event-loop monitor per registry). */
  processMetrics?: boolean;
  /** A scrape's database part gives up after this long (its series are then left out). */
  dbTimeoutMs?: number;
}

/**
 * The registry and every `spm_*` metric.
 * @example
 * const metrics = new OrchestratorMetrics({ db, logger });
 * metrics.observe({ actors: host, lanes });
 * const text = await metrics.render();
 */
export class OrchestratorMetrics implements MetricsSink {
  readonly registry = new Registry();
  private sources: ProcessSources = {};
  private readonly o: Required<Omit<OrchestratorMetricsOptions, 'processMetrics'>> & { processMetrics: boolean };
  private refreshing: Promise<void> | null = null;
  private syncWatermark = 0;
  private dbFailing = false;
  /** What the host's and the database's running totals were at the last scrape (counters only add the difference). */
  private fencedSeen = 0;
  private readonly notificationFailuresSeen: Record<string, number> = {};

  private readonly pendingApprovals: Gauge;
  private readonly oldestPending: Gauge;
  private readonly entries: Gauge<'status'>;
  private readonly transitions: Counter;
  private readonly effects: Counter<'effect' | 'outcome'>;
  private readonly effectDuration: Histogram<'effect'>;
  private readonly syncRuns: Counter<'outcome'>;
  private readonly syncDuration: Histogram;
  private readonly syncLastSuccess: Gauge;
  private readonly outboxDepth: Gauge;
  private readonly notificationFailures: Counter<'channel'>;
  private readonly deployments: Gauge<'status'>;
  private readonly fencedRejected: Counter;
  readonly httpDuration: Histogram<'route' | 'method' | 'status'>;
  private readonly snapshotUsed: Gauge<'system'>;

  constructor(opts: OrchestratorMetricsOptions) {
    this.o = { dbTimeoutMs: 5000, ...opts, processMetrics: opts.processMetrics ?? true };
    const registers = [this.registry];
    if (this.o.processMetrics) collectDefaultMetrics({ register: this.registry });
    const self = this;
    this.pendingApprovals = new Gauge({
      name: 'spm_pending_approvals_count',
      help: 'Entries in pending_approval',
      registers,
    });
    this.oldestPending = new Gauge({
      name: 'spm_oldest_pending_approval_hours',
      help: 'Hours since the oldest entry in pending_approval entered it; 0 when none waits',
      registers,
    });
    this.entries = new Gauge({ name: 'spm_entries', help: 'Entries per status', labelNames: ['status'], registers });
    this.transitions = new Counter({
      name: 'spm_transitions_total',
      help: 'Actor transitions persisted by this replica',
      registers,
    });
    this.effects = new Counter({
      name: 'spm_effects_total',
      help: 'Effects run, by step and outcome (transient: a dependency was down, the entry retries)',
      labelNames: ['effect', 'outcome'],
      registers,
    });
    this.effectDuration = new Histogram({
      name: 'spm_effect_duration_seconds',
      help: 'How long an effect ran',
      labelNames: ['effect'],
      registers,
      buckets: [0.05, 0.25, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    });
    this.syncRuns = new Counter({
      name: 'spm_sync_runs_total',
      help: 'UYUNI sync runs by outcome (sync_runs.status)',
      labelNames: ['outcome'],
      registers,
    });
    this.syncDuration = new Histogram({
      name: 'spm_sync_duration_seconds',
      help: 'Duration of a UYUNI sync run',
      registers,
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600],
    });
    this.syncLastSuccess = new Gauge({
      name: 'spm_sync_last_success_timestamp_seconds',
      help: 'Unix time of the last completed UYUNI sync; 0 before the first',
      registers,
    });
    // Read from the process at each scrape (collect), nothing to keep a handle on.
    new Gauge({
      name: 'spm_lanes_busy',
      help: 'Test lanes running a test now',
      registers,
      collect() {
        this.set(self.sources.lanes?.states().filter((l) => l.entryId !== null).length ?? 0);
      },
    });
    this.outboxDepth = new Gauge({
      name: 'spm_notification_outbox_depth',
      help: 'Notifications waiting for delivery',
      registers,
    });
    this.notificationFailures = new Counter({
      name: 'spm_notification_failures_total',
      help: 'Failed notification delivery attempts',
      labelNames: ['channel'],
      registers,
    });
    this.deployments = new Gauge({
      name: 'spm_deployments',
      help: 'Production deployments per status',
      labelNames: ['status'],
      registers,
    });
    new Gauge({
      name: 'spm_actors_in_memory',
      help: 'Patch actors this replica holds',
      registers,
      collect() {
        this.set(self.sources.actors?.size ?? 0);
      },
    });
    this.fencedRejected = new Counter({
      name: 'spm_fenced_writes_rejected_total',
      help: 'Snapshot or effect writes refused by the fence (another replica owns the entry)',
      registers,
      collect() {
        // The host keeps its own count; a counter only moves forward.
        const n = self.sources.actors?.fencedRejections ?? 0;
        const have = self.fencedSeen;
        if (n > have) this.inc(n - have);
        self.fencedSeen = Math.max(have, n);
      },
    });
    this.httpDuration = new Histogram({
      name: 'spm_http_request_duration_seconds',
      help: 'HTTP request latency by route pattern',
      labelNames: ['route', 'method', 'status'],
      registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.snapshotUsed = new Gauge({
      name: 'spm_snapshot_space_used_ratio',
      help: 'Used fraction of the snapshot storage of a system',
      labelNames: ['system'],
      registers,
    });
    // Series that exist from the start (0), so that alerts and panels see a value, not "no data".
    this.transitions.inc(0);
    this.fencedRejected.inc(0);
    for (const c of NOTIFICATION_CHANNELS) this.notificationFailures.inc({ channel: c }, 0);
    for (const s of SYNC_OUTCOMES) this.syncRuns.inc({ outcome: s }, 0);
  }

  /** Attach what is read from this process (the actor host, the lanes) once they exist. */
  observe(sources: ProcessSources): this {
    this.sources = { ...this.sources, ...sources };
    return this;
  }

  transitionsCommitted(count: number): void {
    if (count > 0) this.transitions.inc(count);
  }

  effectFinished(effect: string, outcome: EffectOutcome, seconds: number): void {
    this.effects.inc({ effect, outcome });
    this.effectDuration.observe({ effect }, seconds);
  }

  snapshotSpace(system: string, usedRatio: number): void {
    this.snapshotUsed.set({ system }, usedRatio);
  }

  /** The Prometheus text exposition, database figures refreshed first. */
  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** For systemd's STATUS= line. @example metrics.statusLine() // '12 patch actors in memory, lanes 1/2 busy' */
  statusLine(): string {
    const lanes = this.sources.lanes?.states() ?? [];
    const busy = lanes.filter((l) => l.entryId !== null).length;
    return `${this.sources.actors?.size ?? 0} patch actors in memory, ${lanes.length === 0 ? 'no test lanes' : `lanes ${busy}/${lanes.length} busy`}`;
  }

  /** The database part of a scrape; concurrent scrapes share one. On failure its series keep their last values. */
  private refresh(): Promise<void> {
    this.refreshing ??= this.readDatabase().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async readDatabase(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`database part of /metrics took over ${this.o.dbTimeoutMs} ms`)),
        this.o.dbTimeoutMs,
      );
    });
    const read = this.o.db.connect(async (c) => ({
      entries: await countEntriesPerStatus(c),
      pending: await readPendingApprovalAge(c),
      deployments: await countDeploymentsPerStatus(c),
      outbox: await readNotificationOutbox(c),
      lastSync: await readLastSyncSuccess(c),
      syncRuns: await listSyncRunsAfter(c, this.syncWatermark, 1000),
    }));
    read.catch(() => undefined);
    try {
      const r = await Promise.race([read, timeout]);
      const byStatus = new Map(r.entries.map((e) => [e.status, e.n]));
      for (const s of STATUSES) this.entries.set({ status: s }, byStatus.get(s) ?? 0);
      for (const [s, n] of byStatus)
        if (!(STATUSES as readonly string[]).includes(s)) this.entries.set({ status: s }, n);
      this.pendingApprovals.set(r.pending.n);
      this.oldestPending.set(r.pending.n === 0 ? 0 : Math.round(r.pending.oldest_hours * 1000) / 1000);
      const deps = new Map(r.deployments.map((d) => [d.status, d.n]));
      for (const s of DEPLOYMENT_STATUSES) this.deployments.set({ status: s }, deps.get(s) ?? 0);
      let depth = 0;
      for (const row of r.outbox) {
        depth += row.pending;
        const seen = this.notificationFailuresSeen[row.channel];
        // The first scrape takes the database's total as the starting value.
        if (row.failures > (seen ?? 0))
          this.notificationFailures.inc({ channel: row.channel }, row.failures - (seen ?? 0));
        this.notificationFailuresSeen[row.channel] = Math.max(seen ?? 0, row.failures);
      }
      this.outboxDepth.set(depth);
      this.syncLastSuccess.set(r.lastSync);
      for (const run of r.syncRuns) {
        if (run.status === 'running') break;
        this.syncRuns.inc({ outcome: run.status });
        if (run.seconds !== null) this.syncDuration.observe(Math.max(0, run.seconds));
        this.syncWatermark = run.id;
      }
      if (this.dbFailing) this.o.logger.info('/metrics reads the database again');
      this.dbFailing = false;
    } catch (raw) {
      if (!this.dbFailing)
        this.o.logger.warn(
          { err: coerceError(raw).message },
          '/metrics could not read the database (said once until it can): its figures keep their last values',
        );
      this.dbFailing = true;
    } finally {
      clearTimeout(timer);
    }
  }
}
