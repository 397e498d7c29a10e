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
 * Outputs and failures are stamped with `at` (database clock) so the machine stays pure.
 */
import { fromPromise } from 'xstate';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Clock } from '../persistence/clock.ts';
import type { Db } from '../persistence/db.ts';
import { claimEffect, markEffectFailed, markEffectSucceeded } from '../persistence/sql/effects.ts';
import { stepOfEffectKey } from './effectKey.ts';
import type { EffectFailure, EffectName, Effects } from './patch.machine.ts';

/** An error an integration raises when a dependency is unreachable: the machine retries with backoff. */
export class TransientError extends Error {
  readonly transient = true;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TransientError';
  }
}

type OutputOf<N extends EffectName> = Omit<Effects[N]['out'], 'at'>;

/** What the integrations must provide: one function per effect, plus reconciliation. */
export type PatchPorts = {
  [N in EffectName]: (input: Effects[N]['in'], signal: AbortSignal) => Promise<OutputOf<N>>;
} & {
  /** Ask the external system whether the effect under `input.key` already happened; its result if so. */
  reconcile<N extends EffectName>(name: N, input: Effects[N]['in']): Promise<OutputOf<N> | null>;
};

export interface EffectRunnerOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  ports: PatchPorts;
  /** Test seam for the chaos harness's control run: skip step 2. Never disabled in production. */
  reconcile?: boolean;
}

/** Every effect the machine invokes (the names of `setup({ actors })`). */
export const EFFECT_NAMES: readonly EffectName[] = [
  'takeSnapshot', 'collectBaseline', 'applyErrata', 'awaitAction', 'checkReboot', 'scheduleReboot', 'awaitHost', 'validate',
  'rollbackTest', 'notify', 'promote', 'planDeployment', 'deployWave', 'verifyDeployment', 'rollbackProduction',
];

/**
 * Build the machine's `actors` for `patchMachine.provide({ actors })`.
 * @example
 * const machine = patchMachine.provide({ actors: makeEffectActors({ db, clock, logger, ports }) });
 */
export function makeEffectActors(opts: EffectRunnerOptions) {
  const { db, clock, logger, ports } = opts;
  const reconcile = opts.reconcile ?? true;

  async function run<N extends EffectName>(name: N, input: Effects[N]['in'], signal: AbortSignal): Promise<Effects[N]['out']> {
    const key = input.key;
    const recorded = await claimEffect(db, { key, queueId: input.entryId, step: stepOfEffectKey(key) });
    if (recorded.status === 'succeeded') return recorded.result as Effects[N]['out'];
    if (recorded.status === 'failed') throw recorded.result as EffectFailure;

    if (!recorded.fresh && reconcile) {
      const found = await ports.reconcile(name, input);
      if (found !== null) {
        const out = { ...found, at: clock.now() } as Effects[N]['out'];
        await markEffectSucceeded(db, key, out, true);
        logger.info({ key, effect: name }, 'effect reconciled: it had already happened');
        return out;
      }
    }

    try {
      const result = await ports[name](input as never, signal);
      const out = { ...result, at: clock.now() } as Effects[N]['out'];
      await markEffectSucceeded(db, key, out, false);
      return out;
    } catch (raw) {
      if (signal.aborted) throw raw;
      const err = coerceError(raw);
      const failure: EffectFailure = { message: err.message, transient: (err as { transient?: boolean }).transient === true, at: clock.now() };
      logger.warn({ key, effect: name, transient: failure.transient, err: err.message }, 'effect failed');
      await markEffectFailed(db, key, failure).catch(() => undefined);
      throw failure;
    }
  }

  const actors = {} as { [N in EffectName]: ReturnType<typeof fromPromise<Effects[N]['out'], Effects[N]['in']>> };
  for (const name of EFFECT_NAMES) {
    (actors as Record<string, unknown>)[name] = fromPromise<Effects[typeof name]['out'], Effects[typeof name]['in']>(({ input, signal }) =>
      run(name, input as never, signal),
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
