/**
 * The effect runner: turns `PatchPorts` (what the integrations do) into the machine's promise actors,
 * each run under its idempotency key (`entry:attempt:step`) with the `effects` ledger:
 *
 * 1. a recorded success (or permanent failure) is returned as recorded — xstate re-runs in-flight
 *    promises on restore, and this makes the re-run a no-op;
 * 2. a key left `started` (we crashed while it ran, or a transient error) is first **reconciled**:
 *    the external system is asked whether the action already happened (UYUNI actions for that
 *    system and advisory, a Salt snapshot whose description carries the key, …);
 * 3. only then does the effect run, and its result is recorded.
 *
 * Two rules make it exactly once across crashes *and* database faults (issue 11, docs/durability.md):
 *
 * - **Nothing starts before its transition is committed.** xstate starts an invoked child inside
 *   the transition that enters its state; the child's first step is to wait on the host's
 *   `whenCommitted` gate for that transition's write. When the write fails for good the host
 *   evicts the actor, the child is aborted, and the effect never ran.
 * - **A database fault is never the patch's failure.** The ledger's own reads and writes (claim,
 *   reconcile's record, the result) are retried with backoff while the error is transient
 *   (`isTransient`); only the integration's own error decides the effect's outcome.
 *
 * Outputs and failures are stamped with `at` (database clock) so the machine stays pure.
 */
import { fromPromise } from 'xstate';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Clock } from '../persistence/clock.ts';
import type { Db } from '../persistence/db.ts';
import {
  claimEffect,
  fenceLeaseLeft,
  markEffectFailed,
  markEffectSucceeded,
  type EffectFence,
} from '../persistence/sql/effects.ts';
import { backoffDelay, isTransient, sleep, TransientError } from '../transient.ts';
import { stepOfEffectKey } from './effectKey.ts';
import type { EffectFailure, EffectName, Effects } from './patch.machine.ts';

export { TransientError };

type OutputOf<N extends EffectName> = Omit<Effects[N]['out'], 'at'>;

/** What the integrations must provide: one function per effect, plus reconciliation. */
export type PatchPorts = {
  [N in EffectName]: (input: Effects[N]['in'], signal: AbortSignal) => Promise<OutputOf<N>>;
} & {
  /** Ask the external system whether the effect under `input.key` already happened; its result if so. */
  reconcile<N extends EffectName>(name: N, input: Effects[N]['in']): Promise<OutputOf<N> | null>;
};

/** The host's side of the runner: the commit gate and the fence. */
export interface CommitGate {
  /** Every transition of the entry queued so far is committed; the fence this replica holds it under. */
  whenCommitted(entryId: number): Promise<EffectFence>;
  /** The fence did not hold: another replica owns the entry now. The host lets the actor go. */
  fenced(entryId: number, why: string): void;
}

/** The effect was refused by the fence: this replica no longer owns the entry. Nothing ran. */
export class FencedEffectError extends Error {
  constructor(key: string, when: string) {
    super(`effect ${key} fenced ${when}: the entry belongs to another replica (or this replica's lease expired)`);
    this.name = 'FencedEffectError';
  }
}

export interface EffectRunnerOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  ports: PatchPorts;
  gate: CommitGate;
  /**
   * How much of the lease must still run, by this process's monotonic clock, when an effect calls
   * out (default 0: only that it runs). The claim proves the lease at the claim; a replica frozen
   * (GC, SIGSTOP, a paused VM) between its claim and the call may wake after another replica took
   * the entry over. Before calling out the runner re-reads the lease when less than this margin is
   * left by its own count, and refuses when the fence no longer holds. The daemon uses a third of
   * the lease TTL: the lease renewal runs every third, so a healthy replica never waits.
   */
  leaseMarginMs?: number;
  /** Test seam for the chaos harness's control run: skip step 2. Never disabled in production. */
  reconcile?: boolean;
}

/** Every effect the machine invokes (the names of `setup({ actors })`). */
export const EFFECT_NAMES: readonly EffectName[] = [
  'takeSnapshot',
  'collectBaseline',
  'applyErrata',
  'awaitAction',
  'checkReboot',
  'scheduleReboot',
  'awaitHost',
  'validate',
  'rollbackTest',
  'notify',
  'promote',
  'planDeployment',
  'deployWave',
  'verifyDeployment',
  'rollbackProduction',
];

/**
 * Build the machine's `actors` for `patchMachine.provide({ actors })`.
 * @example
 * const machine = patchMachine.provide({ actors: makeEffectActors({ db, clock, logger, ports }) });
 */
export function makeEffectActors(opts: EffectRunnerOptions) {
  const { db, clock, logger, ports, gate } = opts;
  const reconcile = opts.reconcile ?? true;
  const marginMs = opts.leaseMarginMs ?? 0;

  /** A ledger statement, retried while the database is unreachable (a blip pauses the effect). */
  async function ledger<T>(what: string, key: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (raw) {
        if (signal.aborted || !isTransient(raw)) throw raw;
        const ms = backoffDelay(attempt, { baseMs: 100, maxMs: 5000 });
        if (attempt === 1 || attempt % 10 === 0) {
          logger.warn(
            { key, ledger: what, attempt, err: coerceError(raw).message },
            'effect ledger: database unreachable; retrying',
          );
        }
        await sleep(ms, signal);
      }
    }
  }

  /** The failure the machine sees: stamped with the one clock, transient by the one rule. */
  function failureOf(raw: unknown): EffectFailure {
    return { message: coerceError(raw).message, transient: isTransient(raw), at: clock.now() };
  }

  async function run<N extends EffectName>(
    name: N,
    input: Effects[N]['in'],
    signal: AbortSignal,
  ): Promise<Effects[N]['out']> {
    const key = input.key;
    // xstate starts this child inside the transition, before the host has queued that transition's
    // write: one microtask lets the host queue it, then the gate waits for its commit.
    await Promise.resolve();
    const fence = await gate.whenCommitted(input.entryId);
    if (signal.aborted) throw new Error(`effect ${key} aborted before it started`);
    const queueId = input.entryId;
    const refuse = (when: string): never => {
      const err = new FencedEffectError(key, when);
      logger.warn({ key, effect: name, owner: fence.ownerId, epoch: fence.epoch }, err.message);
      gate.fenced(queueId, err.message);
      throw err;
    };

    // The lease's end by the monotonic clock, counted from before the statement was sent: never
    // later than the database's own end of it.
    let sentAt = performance.now();
    const recorded = await ledger('claim', key, signal, () => {
      sentAt = performance.now();
      return claimEffect(db, { key, queueId, step: stepOfEffectKey(key), fence });
    });
    if (recorded === null) return refuse('before it ran');
    if (recorded.status === 'succeeded') return recorded.result as Effects[N]['out'];
    if (recorded.status === 'failed') throw recorded.result as EffectFailure;
    let leaseEnds = sentAt + recorded.lease_left_ms;

    /**
     * Right before calling out: the lease still runs for the margin, by our own clock; if not (we
     * were frozen or slow since the claim), read it again, and wait for its renewal while it runs
     * short. Refused when it no longer holds: the replica that took the entry over runs the effect.
     */
    const holdLease = async (): Promise<void> => {
      while (performance.now() + marginMs >= leaseEnds) {
        let at = performance.now();
        const left = await ledger('lease', key, signal, () => {
          at = performance.now();
          return fenceLeaseLeft(db, queueId, fence);
        });
        if (left === null) refuse('before it ran (its lease had ended)');
        else leaseEnds = at + left;
        if (performance.now() + marginMs >= leaseEnds) await sleep(Math.min(250, Math.max(10, marginMs / 4)), signal);
      }
    };

    try {
      if (!recorded.fresh && reconcile) {
        const found = await ports.reconcile(name, input);
        if (found !== null) {
          const out = { ...found, at: clock.now() } as Effects[N]['out'];
          if (!(await ledger('reconciled', key, signal, () => markEffectSucceeded(db, key, out, true, fence, queueId))))
            refuse('at its result');
          logger.info({ key, effect: name }, 'effect reconciled: it had already happened');
          return out;
        }
      }
      await holdLease();
      const result = await ports[name](input as never, signal);
      const out = { ...result, at: clock.now() } as Effects[N]['out'];
      if (!(await ledger('succeeded', key, signal, () => markEffectSucceeded(db, key, out, false, fence, queueId))))
        refuse('at its result');
      return out;
    } catch (raw) {
      if (signal.aborted || raw instanceof FencedEffectError) throw raw;
      const failure = failureOf(raw);
      logger.warn({ key, effect: name, transient: failure.transient, err: failure.message }, 'effect failed');
      await ledger('failed', key, signal, () => markEffectFailed(db, key, failure, fence, queueId)).catch(
        () => undefined,
      );
      throw failure;
    }
  }

  const actors = {} as { [N in EffectName]: ReturnType<typeof fromPromise<Effects[N]['out'], Effects[N]['in']>> };
  for (const name of EFFECT_NAMES) {
    (actors as Record<string, unknown>)[name] = fromPromise<Effects[typeof name]['out'], Effects[typeof name]['in']>(
      ({ input, signal }) => run(name, input as never, signal),
    );
  }
  return actors;
}

/**
 * Ports whose every effect goes through one function (fakes, remote fakes, refusals).
 * @example
 * const ports = portsFrom((name, input) => world.run(name, input), (name, input) => world.reconcile(name, input));
 */
export function portsFrom(
  run: (name: EffectName, input: never, signal: AbortSignal) => Promise<unknown>,
  reconcile: (name: EffectName, input: never) => Promise<unknown> = async () => null,
): PatchPorts {
  const ports: Record<string, unknown> = { reconcile };
  for (const name of EFFECT_NAMES) ports[name] = (input: never, signal: AbortSignal) => run(name, input, signal);
  return ports as unknown as PatchPorts;
}

/** Ports for a daemon with no integrations configured: every effect is refused, clearly. */
export function unavailablePorts(reason: string): PatchPorts {
  return portsFrom(async () => {
    throw new Error(reason);
  });
}
