/**
 * The database clock is authoritative (DESIGN.md §3 rule 3): deadlines and event times use
 * `Date.now()` corrected by the measured skew to PostgreSQL's `clock_timestamp()`.
 */
import { sql } from 'slonik';
import { z } from 'zod';
import type { Db } from './db.ts';

export interface Clock {
  /** Epoch ms on the database clock (an integer). */
  now(): number;
}

export class DbClock implements Clock {
  private skewMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  /** Measure the skew now and every `everyMs`. */
  async start(everyMs = 60_000): Promise<void> {
    await this.measure();
    this.timer = setInterval(() => void this.measure().catch(() => undefined), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async measure(): Promise<number> {
    const t0 = Date.now();
    const dbNow = await this.db.oneFirst(
      sql.type(z.object({ now: z.number() }))`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`,
    );
    const t1 = Date.now();
    this.skewMs = Math.round(dbNow - (t0 + t1) / 2);
    return this.skewMs;
  }

  now(): number {
    return Date.now() + this.skewMs;
  }
}
