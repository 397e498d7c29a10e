/**
 * Committed transitions as events: tests (and anything else in-process) wait on the host's commits
 * instead of polling the database.
 */
import type { StateValue } from 'xstate';
import { coerceError } from '../errors.ts';
import type { EntryRow } from '../persistence/sql/entries.ts';
import type { CommittedTransition } from './hostTypes.ts';
import { stateLabel } from './patch.machine.ts';

export class CommitEvents {
  private readonly listeners = new Set<(c: CommittedTransition) => void>();
  private readonly onListenerError: (c: { err: string }) => void;
  constructor(onListenerError: (c: { err: string }) => void) {
    this.onListenerError = onListenerError;
  }

  emit(c: CommittedTransition): void {
    for (const l of this.listeners) {
      try {
        l(c);
      } catch (raw) {
        this.onListenerError({ err: coerceError(raw).message }); // never the host's problem
      }
    }
  }

  on(listener: (c: CommittedTransition) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolve once a committed state of entry `id` (now, read by `load`, or later) satisfies `pred`. */
  waitFor(
    id: number,
    pred: (c: { status: string; state: string }) => boolean,
    timeoutMs: number,
    load: () => Promise<EntryRow | null>,
  ): Promise<CommittedTransition> {
    return new Promise<CommittedTransition>((resolve, reject) => {
      let done = false;
      const finish = (c: CommittedTransition | Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        off();
        if (c instanceof Error) reject(c);
        else resolve(c);
      };
      const off = this.on((c) => {
        if (c.id === id && pred(c)) finish(c);
      });
      const timer = setTimeout(
        () => finish(new Error(`entry ${id}: no committed state matched within ${timeoutMs} ms`)),
        timeoutMs,
      );
      // The state already committed (the entry may have moved before we subscribed).
      void load().then(
        (row) => {
          if (row === null) return finish(new Error(`entry ${id} does not exist`));
          const c = {
            id,
            status: row.status,
            state: stateLabel((row.snapshot as { value: StateValue }).value),
            revision: row.revision,
          };
          if (pred(c)) finish(c);
        },
        (err: unknown) => finish(coerceError(err)),
      );
    });
  }
}
