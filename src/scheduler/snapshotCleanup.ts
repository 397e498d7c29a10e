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
import type { SaltClient } from '../services/salt/client.ts';
import { AbortableLoop } from './loop.ts';

export interface SnapshotCleanupOptions {
  db: Db;
  logger: Logger;
  salt: SaltClient;
  keepDays: () => Promise<number>;
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
        if (!this.o.lead || (await this.o.lead())) await this.round();
      } catch (raw) {
        this.o.logger.warn({ err: coerceError(raw).message }, 'snapshot cleanup round failed; retried next round');
      }
      if (this.active) await this.sleep(this.o.everyMs);
    }
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
