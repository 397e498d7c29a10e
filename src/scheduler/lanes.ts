/**
 * Test lanes: one per configured test system (`orchestrator_config.test_systems`: one or more per
 * OS; several per OS test in parallel), each a better-queue with concurrency 1, so a test system
 * runs one test at a time. The next entry is the queued one with the highest success score, then
 * priority, then the oldest. Lanes are filled from Postgres at start and after every change (and
 * every `pollMs`): an entry already occupying a system (a test running, rolling back, or waiting
 * for a human after a failed rollback) keeps its lane after a restart.
 *
 * A lane pauses, says why (GET /api/v1/lanes, the dashboard, a notification) and leaves its next
 * entry queued when its system cannot take a test — not known to UYUNI (the sync has not recorded
 * it, or the name is wrong), not answering Salt's `test.ping`: a lane's problem is not the patch's
 * fault (issue 11). It resumes by itself when the system is fine again. (A system Prometheus does
 * not scrape is not checked here: its test waits at the baseline, which has no data, as a
 * transient failure.)
 *
 * With several replicas each lane runs on one of them at a time (`lead('lane:<system>')`), so two
 * replicas never start two tests on one test system.
 */
import BetterQueue from 'better-queue';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ActorHost } from '../machines/host.ts';
import type { Db } from '../persistence/db.ts';
import {
  findLaneOccupant,
  getLaneEntry,
  isOccupyingTestSystem,
  nextQueuedForLane,
  whenSystemFree,
} from '../persistence/sql/lanes.ts';
import type { SaltClient } from '../services/salt/client.ts';
import { loadTestSystems } from '../services/settings.ts';
import { AbortableLoop } from './loop.ts';

export interface LaneState {
  os: string;
  system: string;
  systemId: number | null;
  entryId: number | null;
  paused: string | null;
  completed: number;
  /** false while another replica runs this lane. */
  leader: boolean;
}

export interface TestLanesOptions {
  db: Db;
  logger: Logger;
  actors: ActorHost;
  salt?: SaltClient | undefined;
  pollMs?: number;
  /** With several replicas: whether this one runs the lane of a system (`lane:<system>`). */
  lead?: (role: string) => Promise<boolean>;
  /** Checks before a test starts: each returns why the system cannot take one now, or null. */
  checks?: ((system: string) => Promise<string | null>)[];
  /** Told when a lane pauses (the reason) — a notification. */
  onPause?: (lane: { os: string; system: string }, reason: string) => Promise<void>;
}

export class TestLanes extends AbortableLoop {
  private readonly lanes = new Map<string, { state: LaneState; queue: BetterQueue<{ id: number }> }>();
  private readonly o: TestLanesOptions & { pollMs: number };

  constructor(opts: TestLanesOptions) {
    super();
    this.o = { ...opts, pollMs: opts.pollMs ?? 2000 };
  }

  /** Something changed (an entry was queued or left a lane): fill the lanes now. */
  nudge(): void {
    this.interrupt();
  }

  /** The last error of a fill (a bad config row): logged once, shown by GET /lanes. */
  lastError: string | null = null;

  states(): LaneState[] {
    return [...this.lanes.values()].map((l) => ({ ...l.state }));
  }

  protected async run(): Promise<void> {
    while (this.active) {
      try {
        await this.fill();
        this.lastError = null;
      } catch (raw) {
        const msg = coerceError(raw).message;
        if (msg !== this.lastError)
          this.o.logger.error({ err: msg }, 'test lanes: could not fill (said once until it changes)');
        this.lastError = msg;
      }
      if (this.active) await this.sleep(this.o.pollMs);
    }
    await Promise.all(
      [...this.lanes.values()].map((l) => new Promise<void>((resolve) => l.queue.destroy(() => resolve()))),
    );
  }

  private lane(os: string, system: string, systemId: number | null) {
    const name = `${os}/${system}`;
    let l = this.lanes.get(name);
    if (!l) {
      const state: LaneState = { os, system, systemId, entryId: null, paused: null, completed: 0, leader: true };
      const queue = new BetterQueue<{ id: number }>(
        (task, cb) => {
          this.runEntry(state, task.id).then(
            () => cb(null),
            (err: unknown) => cb(err as Error),
          );
        },
        { concurrent: 1, maxRetries: 0, autoResume: true },
      );
      queue.on('task_failed', (_id, err) =>
        this.o.logger.error({ lane: name, err: String(err) }, 'test lane task failed'),
      );
      l = { state, queue };
      this.lanes.set(name, l);
    }
    l.state.systemId = systemId;
    return l;
  }

  /** One pass: every idle lane takes its occupant (after a restart) or the next queued entry. */
  async fill(): Promise<void> {
    const config = await loadTestSystems(this.o.db);
    for (const [os, systems] of Object.entries(config)) {
      for (const s of systems ?? []) {
        const l = this.lane(os, s.system_name, s.system_id);
        if (l.state.entryId !== null || !this.active) continue;
        l.state.leader = this.o.lead ? await this.o.lead(`lane:${s.system_name}`) : true;
        if (!l.state.leader) continue;
        const occupant = await findLaneOccupant(this.o.db, s.system_name);
        if (occupant !== null) {
          this.take(l, occupant);
          continue;
        }
        const held = [...this.lanes.values()].map((x) => x.state.entryId).filter((x): x is number => x !== null);
        const next = await nextQueuedForLane(this.o.db, os, held);
        if (next === null) continue;
        const down = await this.cannotTest(s.system_name);
        if (down !== l.state.paused) {
          if (down) {
            this.o.logger.warn({ lane: `${os}/${s.system_name}`, reason: down }, 'test lane paused');
            await this.o
              .onPause?.({ os, system: s.system_name }, down)
              .catch((raw) =>
                this.o.logger.warn({ err: coerceError(raw).message }, 'test lane: the pause notification failed'),
              );
          } else if (l.state.paused) this.o.logger.info({ lane: `${os}/${s.system_name}` }, 'test lane resumed');
        }
        l.state.paused = down;
        if (down) continue;
        this.take(l, next);
      }
    }
  }

  private take(l: { state: LaneState; queue: BetterQueue<{ id: number }> }, id: number): void {
    l.state.entryId = id;
    l.queue.push({ id });
  }

  /** Why the system cannot take a test now (the first check that says so), or null. */
  private async cannotTest(system: string): Promise<string | null> {
    for (const check of this.o.checks ?? []) {
      const why = await check(system).catch((raw) => `check failed: ${coerceError(raw).message}`);
      if (why !== null) return why;
    }
    return this.unreachable(system);
  }

  private async unreachable(minion: string): Promise<string | null> {
    if (!this.o.salt) return null;
    try {
      const r = await this.o.salt.local<boolean>([minion], 'test.ping');
      return r.returned[minion] === true ? null : `test system ${minion} does not answer test.ping`;
    } catch (raw) {
      return `Salt API: ${coerceError(raw).message}`;
    }
  }

  /** Start the entry on this lane's system (if still queued) and hold the lane until it frees the system. */
  private async runEntry(state: LaneState, id: number): Promise<void> {
    try {
      const row = await getLaneEntry(this.o.db, id);
      if (row === null) return;
      // Started elsewhere (an operator, another lane).
      if (row.status !== 'queued' && row.system !== state.system) return;
      if (row.status === 'queued') {
        try {
          // Under the system's lock: an operator's rollback or start there cannot slip in between.
          const { heldBy: holder } = await whenSystemFree(this.o.db, state.system, id, () =>
            this.o.actors.send(
              id,
              { type: 'START_TEST', by: 'scheduler', testSystem: { id: state.systemId, name: state.system } },
              { actor: 'scheduler' },
            ),
          );
          if (holder !== null) {
            this.o.logger.info({ id, lane: state.system, holder }, 'test lane: the system is held by another entry');
            return;
          }
        } catch (raw) {
          this.o.logger.info(
            { id, lane: state.system, err: coerceError(raw).message },
            'test lane: entry not started (taken or changed)',
          );
          return;
        }
      }
      while (this.active) {
        const busy = await isOccupyingTestSystem(this.o.db, id);
        if (busy !== true) break;
        await new Promise((r) => setTimeout(r, Math.min(this.o.pollMs, 500)));
      }
      state.completed++;
    } finally {
      state.entryId = null;
      this.nudge();
    }
  }
}
