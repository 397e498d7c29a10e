/**
 * Snapshot cleanup: the snapper snapshots the orchestrator took on test systems are deleted once
 * their entry has ended (completed, rejected, rolled back, removed) and the retention period
 * (`orchestrator_config.snapshot_retention.keep_days_after_final`, 7 days by default) has passed.
 * Only snapshots whose description carries the orchestrator's prefix and the entry's key are
 * touched; one already gone is recorded as such. One replica runs it (`lead`).
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Db } from '../persistence/db.ts';
import { listSnapshotsDueForCleanup, recordSnapshotCleanup } from '../persistence/sql/snapshotCleanup.ts';
import type { MetricsSink } from '../services/metrics.ts';
import type { SaltClient } from '../services/salt/client.ts';
import { AbortableLoop } from './loop.ts';

export interface SnapshotCleanupOptions {
  db: Db;
  logger: Logger;
  salt: SaltClient;
  keepDays: () => Promise<number>;
  /** The test systems whose snapshot storage is measured each round (`spm_snapshot_space_used_ratio`). */
  testSystems?: () => Promise<string[]>;
  metrics?: MetricsSink;
  lead?: () => Promise<boolean>;
  everyMs?: number;
}

export class SnapshotCleanup extends AbortableLoop {
  private readonly o: SnapshotCleanupOptions & { everyMs: number };
  deleted = 0;

  constructor(opts: SnapshotCleanupOptions) {
    super();
    this.o = { everyMs: 3_600_000, ...opts };
  }

  protected async run(): Promise<void> {
    while (this.active) {
      try {
        if (!this.o.lead || (await this.o.lead())) {
          await this.round();
          await this.measure();
        }
      } catch (raw) {
        this.o.logger.warn({ err: coerceError(raw).message }, 'snapshot cleanup round failed; retried next round');
      }
      if (this.active) await this.sleep(this.o.everyMs);
    }
  }

  /**
   * Measure the snapshot storage of the test systems (the design's "snapshot storage full" risk:
   * the alerts SnapshotSpaceLow / SnapshotSpaceCritical fire on the gauge). A system that does not
   * answer keeps its last figure.
   * @returns the used fraction per system measured now
   */
  async measure(): Promise<Record<string, number>> {
    if (!this.o.testSystems || !this.o.metrics) return {};
    const systems = await this.o.testSystems();
    if (systems.length === 0) return {};
    const r = await this.o.salt.snapshotSpace(systems);
    for (const [system, ratio] of Object.entries(r.returned)) this.o.metrics.snapshotSpace(system, ratio);
    const unmeasured = systems.filter((s) => !(s in r.returned));
    if (unmeasured.length > 0)
      this.o.logger.warn({ systems: unmeasured }, 'snapshot space: no answer (or no / mount) from these test systems');
    return r.returned;
  }

  /** One pass over what is due; returns how many snapshots were deleted. */
  async round(): Promise<number> {
    const due = await listSnapshotsDueForCleanup(this.o.db, await this.o.keepDays(), 50);
    let n = 0;
    for (const d of due) {
      if (!this.active && this.state !== 'created') break;
      const id = Number(d.snapshot_id);
      const list = await this.o.salt.listSnapshots([d.system]);
      if (list.missing.length > 0) continue; // not answering: next round
      const snap = (list.returned[d.system] ?? []).find((s) => s.id === id);
      // Ours: the description the engine gave it names this entry's key (`spm-orchestrator <entry>:…`).
      const ours = snap?.description?.startsWith(`spm-orchestrator ${d.queue_id}:`) === true;
      if (snap && !ours) {
        this.o.logger.warn(
          { system: d.system, snapshot: id, description: snap.description },
          'snapshot cleanup: not ours, left alone',
        );
        await recordSnapshotCleanup(this.o.db, {
          key: d.key,
          queueId: d.queue_id,
          result: { deleted: false, reason: 'not the orchestrator’s snapshot' },
        });
        continue;
      }
      if (snap) {
        await this.o.salt.deleteSnapshots(d.system, [id]);
        n++;
        this.deleted++;
      }
      await recordSnapshotCleanup(this.o.db, {
        key: d.key,
        queueId: d.queue_id,
        result: { deleted: snap !== undefined, system: d.system, snapshot: id },
      });
    }
    if (n > 0) this.o.logger.info({ deleted: n }, 'snapshot cleanup: old test snapshots deleted');
    return n;
  }
}
