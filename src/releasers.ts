/**
 * LIFO cleanup list (STYLE rule 7): every started resource registers its release; shutdown runs
 * them in reverse order, keeps going past failures, and reports the first error.
 */
import { coerceError } from './errors.ts';
import type { Logger } from './logger.ts';

export class Releasers {
  private readonly list: { name: string; fn: () => Promise<void> | void }[] = [];
  private released = false;

  add(name: string, fn: () => Promise<void> | void): void {
    if (this.released) throw new Error(`cannot register ${name}: already released`);
    this.list.push({ name, fn });
  }

  /** Run every release once, newest first. */
  async release(logger: Logger): Promise<Error | undefined> {
    if (this.released) return undefined;
    this.released = true;
    let first: Error | undefined;
    for (const { name, fn } of this.list.reverse()) {
      try {
        await fn();
      } catch (raw) {
        const err = coerceError(raw);
        logger.error({ err, releaser: name }, 'cleanup step failed');
        first ??= err;
      }
    }
    return first;
  }
}
