/**
 * A long-running loop's lifecycle (STYLE rule 3): `created → active → stopping → stopped`, and an
 * abortable sleep that `interrupt()` (a nudge, or `stop()`) ends early. Subclasses implement `run()`
 * and check `active` between iterations.
 */
export abstract class AbortableLoop {
  protected state: 'created' | 'active' | 'stopping' | 'stopped' = 'created';
  /** When the current sleep ends (on `now()`'s clock); Infinity when not sleeping. */
  protected nextWakeAt = Infinity;
  private wake: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private readonly clockNow: () => number;

  constructor(now: () => number = Date.now) {
    this.clockNow = now;
  }

  protected get active(): boolean {
    return this.state === 'active';
  }

  start(): void {
    if (this.state !== 'created') return;
    this.state = 'active';
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (this.state !== 'active') return;
    this.state = 'stopping';
    this.interrupt();
    await this.loop;
    this.state = 'stopped';
  }

  protected abstract run(): Promise<void>;

  /** Sleep `ms`, or less if interrupted. */
  protected sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      this.reschedule(ms);
    });
  }

  /** Move the end of the current sleep to `ms` from now. */
  protected reschedule(ms: number): void {
    clearTimeout(this.timer);
    this.nextWakeAt = this.clockNow() + ms;
    this.timer = setTimeout(() => this.interrupt(), ms);
  }

  /** End the current sleep now. */
  protected interrupt(): void {
    clearTimeout(this.timer);
    this.nextWakeAt = Infinity;
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
