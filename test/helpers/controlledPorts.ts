/**
 * Effect ports whose calls end only when the test says so: the model-based paths and the golden
 * corpus drive entries step by step through the real host with them.
 */
import { portsFrom, TransientError, type PatchPorts } from '../../src/machines/effects.ts';
import type { EffectName } from '../../src/machines/patch.machine.ts';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class ControlledPorts {
  readonly pending = new Map<string, Pending>();
  ports(): PatchPorts {
    return portsFrom(
      (name, input: { entryId: number }, signal) =>
        new Promise((resolve, reject) => {
          const k = `${input.entryId}|${name}`;
          this.pending.set(k, { resolve, reject });
          signal.addEventListener(
            'abort',
            () => {
              if (this.pending.get(k)?.resolve === resolve) this.pending.delete(k);
              reject(new Error('aborted'));
            },
            { once: true },
          );
        }),
    );
  }
  /** Is a call of `src` for the entry waiting to be settled? */
  has(entryId: number, src: EffectName): boolean {
    return this.pending.has(`${entryId}|${src}`);
  }
  async settle(
    entryId: number,
    src: EffectName,
    how: { output?: unknown; error?: { message: string; transient: boolean } },
  ): Promise<void> {
    const k = `${entryId}|${src}`;
    for (let i = 0; i < 500 && !this.pending.has(k); i++) await new Promise((r) => setTimeout(r, 10));
    const p = this.pending.get(k);
    if (!p) throw new Error(`entry ${entryId}: no pending ${src} call to settle`);
    this.pending.delete(k);
    if (how.error) p.reject(how.error.transient ? new TransientError(how.error.message) : new Error(how.error.message));
    else {
      const { at: _at, ...out } = how.output as Record<string, unknown>;
      p.resolve(out);
    }
  }
}
