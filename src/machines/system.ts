/**
 * Wiring of the durable actor system: database clock, effect runner over the given ports, the
 * machine with its effects provided, the actor host and the timer scheduler. Used by the daemon's
 * composition root and by the tests, so both run exactly the same assembly.
 */
import type { InspectionEvent } from 'xstate';
import type { Logger } from '../logger.ts';
import { DbClock } from '../persistence/clock.ts';
import type { Db } from '../persistence/db.ts';
import { TimerScheduler } from '../scheduler/timers.ts';
import { makeEffectActors, type CommitGate, type PatchPorts } from './effects.ts';
import { ActorHost } from './host.ts';
import { OperatorInbox } from './inbox.ts';
import type { MetricsSink } from '../services/metrics.ts';
import { patchMachine } from './patch.machine.ts';

export interface ActorSystemOptions {
  db: Db;
  logger: Logger;
  ownerId: string;
  leaseTtlMs: number;
  pollMs: number;
  ports: PatchPorts;
  /** Chaos-harness control run only. */
  reconcile?: boolean;
  inspect?: (ev: InspectionEvent) => void;
  /** The database URL for the operator inbox's LISTEN connection (polling without it). */
  listenUrl?: string;
  metrics?: MetricsSink;
  /** The database clock, when the caller shares it (the engine judges windows on it); started here otherwise. */
  clock?: DbClock;
}

export interface ActorSystem {
  clock: DbClock;
  host: ActorHost;
  scheduler: TimerScheduler;
  inbox: OperatorInbox;
  hydration: { hydrated: number; quarantined: number };
  stop(): Promise<void>;
}

export async function startActorSystem(o: ActorSystemOptions): Promise<ActorSystem> {
  const ownClock = o.clock === undefined;
  const clock = o.clock ?? new DbClock(o.db);
  if (ownClock) await clock.start();
  // The effect runner waits on the host's commit gate; the host is built with the machine, so the
  // gate is bound once the host exists (no effect can start before: no actor runs yet).
  let host: ActorHost | undefined;
  const gate: CommitGate = {
    whenCommitted: (entryId) =>
      host ? host.whenCommitted(entryId) : Promise.reject(new Error('actor host not started')),
    fenced: (entryId, why) => host?.fenced(entryId, why),
  };
  const machine = patchMachine.provide({
    actors: makeEffectActors({
      db: o.db,
      clock,
      logger: o.logger,
      ports: o.ports,
      gate,
      leaseMarginMs: Math.floor(o.leaseTtlMs / 3),
      ...(o.reconcile === undefined ? {} : { reconcile: o.reconcile }),
    }),
  });
  let scheduler: TimerScheduler | undefined;
  const inbox = new OperatorInbox({
    db: o.db,
    logger: o.logger,
    ownerId: o.ownerId,
    ...(o.listenUrl ? { listenUrl: o.listenUrl } : {}),
  });
  host = new ActorHost({
    db: o.db,
    logger: o.logger,
    clock,
    ownerId: o.ownerId,
    leaseTtlMs: o.leaseTtlMs,
    machine,
    onTimerArmed: (fireAt) => scheduler?.nudge(fireAt),
    forward: (id, event, meta) => inbox.forward(id, event, meta),
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.inspect ? { inspect: o.inspect } : {}),
  });
  scheduler = new TimerScheduler({ db: o.db, logger: o.logger, clock, ownerId: o.ownerId, pollMs: o.pollMs, host });
  const hydration = await host.hydrateAll({ includeOwn: true });
  host.startLeaseLoop();
  scheduler.start();
  const h = host;
  inbox.startDelivering((id, event, meta) => h.send(id, event as never, meta, { forward: false }));
  const s = scheduler;
  return {
    clock,
    host,
    scheduler: s,
    inbox,
    hydration,
    async stop() {
      await inbox.stop();
      await s.stop();
      await h.stop();
      if (ownClock) clock.stop();
    },
  };
}
