/**
 * Rollbacks of deployments whose entry already `completed` (its actor is final and released): the
 * `patch_rollbacks` row is the durable job. The API inserts it (`in_progress`, effect key `rb:…`),
 * this loop runs it with the same idempotent production rollback the actors use, and a daemon that
 * dies mid-way finds the row at start and runs it again (package rollback touches only systems not
 * yet at their recorded versions; a system rollback checks snapper's "writable copy of #N").
 *
 * Like a deployment, a rollback changes production hosts: it first takes the deployment's
 * production groups (`production_group_locks`, all or none) and waits — its row says for what
 * (`wait_reason`, GET /rollback/{id}) — while another entry's deployment holds one; the groups are
 * given back once it ended (a transient failure keeps them: the job is retried next round).
 */
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { PatchPorts } from '../machines/effects.ts';
import type { TargetOs } from '../machines/patch.machine.ts';
import type { Db } from '../persistence/db.ts';
import { groupWaitReason } from '../engine/rolloutLookups.ts';
import {
  acquireGroupLocks,
  deploymentGroups,
  releaseGroupLocksOfDeployment,
  setRollbackWaitReason,
} from '../persistence/sql/groupLocks.ts';
import { failRollbackJob, listRollbackJobs } from '../persistence/sql/rollbacks.ts';
import { AbortableLoop } from './loop.ts';
import { isTransient } from '../transient.ts';

export class RollbackRunner extends AbortableLoop {
  /** `lead`: with several replicas, whether this one runs the jobs (asked before each job). */
  private readonly o: { db: Db; logger: Logger; ports: PatchPorts; pollMs: number; lead?: () => Promise<boolean> };
  private readonly abort = new AbortController();
  /** Jobs waiting for their groups, and why (logged once per reason). */
  private readonly waiting = new Map<number, string>();

  constructor(opts: { db: Db; logger: Logger; ports: PatchPorts; pollMs?: number; lead?: () => Promise<boolean> }) {
    super();
    this.o = { ...opts, pollMs: opts.pollMs ?? 5000 };
  }

  nudge(): void {
    this.interrupt();
  }

  private async leads(): Promise<boolean> {
    return this.o.lead ? this.o.lead() : true;
  }

  override async stop(): Promise<void> {
    this.abort.abort();
    await super.stop();
  }

  protected async run(): Promise<void> {
    while (this.active) {
      try {
        const jobs = (await this.leads()) ? await listRollbackJobs(this.o.db) : [];
        for (const j of jobs) {
          // Asked before each job: a replica that lost the role starts no further rollback.
          if (!this.active || !(await this.leads())) break;
          const busy = await acquireGroupLocks(this.o.db, {
            deploymentId: j.deployment_id,
            queueId: j.queue_id,
            errataId: j.errata_id,
            groups: [...(await deploymentGroups(this.o.db, j.deployment_id))],
          });
          if (busy !== null) {
            const why = groupWaitReason(busy);
            if (this.waiting.get(j.id) !== why)
              this.o.logger.warn({ rollback: j.id, deployment: j.deployment_id, why }, 'rollback waits for its groups');
            this.waiting.set(j.id, why);
            await setRollbackWaitReason(this.o.db, j.id, why);
            continue;
          }
          this.waiting.delete(j.id);
          await setRollbackWaitReason(this.o.db, j.id, null);
          let ended = true;
          try {
            await this.o.ports.rollbackProduction(
              {
                key: j.effect_key,
                entryId: j.queue_id,
                errataId: j.errata_id,
                targetOs: j.target_os as TargetOs,
                attempt: 1,
                testSystem: null,
                deploymentId: j.deployment_id,
                rollbackType: j.rollback_type,
                systems: j.target_systems,
                reason: j.reason ?? 'rollback',
              },
              this.abort.signal,
            );
            this.o.logger.info(
              { rollback: j.id, deployment: j.deployment_id },
              'rollback of a completed deployment finished',
            );
          } catch (raw) {
            const transient = isTransient(raw);
            const message = coerceError(raw).message;
            this.o.logger.warn(
              { rollback: j.id, err: message, transient },
              'rollback of a completed deployment failed',
            );
            // Transient: retried next round. Permanent: recorded on the row (if the rollback did not),
            // never retried in a loop.
            if (!transient) await failRollbackJob(this.o.db, j.id, message);
            else ended = false;
          }
          if (ended) await releaseGroupLocksOfDeployment(this.o.db, j.deployment_id);
        }
      } catch (raw) {
        this.o.logger.error({ err: coerceError(raw).message }, 'rollback runner round failed');
      }
      if (this.active) await this.sleep(this.o.pollMs);
    }
  }
}
