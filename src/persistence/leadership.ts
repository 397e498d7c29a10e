/**
 * Singleton work across replicas (issue 11): the sync poller, the notifier's delivery and digest,
 * the rollback runner and each test lane run on one replica at a time. A replica *leads* a role
 * while it holds a PostgreSQL session advisory lock named after it, on one connection of its own:
 * the lock goes with the connection, so a dead or cut-off replica's roles are free at once for
 * another to take, and two replicas can never hold one role together.
 *
 * `leads(role)` is what a loop asks before each round (and before each unit of work that acts on
 * the outside world): true once this replica holds the role, false while another does or while
 * the lock connection is down (it is re-made with backoff; roles are taken again on the next ask).
 */
import pg from 'pg';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { backoffDelay } from '../transient.ts';

const TRY_LOCK = `SELECT pg_try_advisory_lock(hashtextextended('spm-orchestrator role ' || $1, 0)) AS ok`;

export class Leadership {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly held = new Set<string>();
  private stopped = false;
  private failures = 0;
  private retryAt = 0;
  /** Roles taken and lost so far (logs, tests). */
  readonly events: { role: string; taken: boolean; at: number }[] = [];

  private readonly o: { url: string; logger: Logger; instanceId: string };
  constructor(opts: { url: string; logger: Logger; instanceId: string }) {
    this.o = opts;
  }

  /** Does this replica lead `role`? Takes it when free. */
  async leads(role: string): Promise<boolean> {
    if (this.stopped) return false;
    if (this.held.has(role)) return this.client !== undefined;
    const c = await this.connection();
    if (!c) return false;
    try {
      const { rows } = await c.query<{ ok: boolean }>(TRY_LOCK, [role]);
      if (rows[0]?.ok !== true) return false;
      this.held.add(role);
      this.events.push({ role, taken: true, at: Date.now() });
      this.o.logger.info({ role, instance: this.o.instanceId }, 'this replica now leads the role');
      return true;
    } catch (raw) {
      this.o.logger.warn({ role, err: coerceError(raw).message }, 'leadership: could not ask for the role');
      return false;
    }
  }

  /** Roles held now. */
  roles(): string[] {
    return [...this.held];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.client;
    this.client = undefined;
    this.held.clear();
    await c?.end().catch(() => undefined);
  }

  private async connection(): Promise<pg.Client | undefined> {
    if (this.client) return this.client;
    if (Date.now() < this.retryAt) return undefined;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    await this.connecting;
    return this.client;
  }

  private async connect(): Promise<void> {
    const c = new pg.Client({
      connectionString: this.o.url,
      application_name: `spm-orchestrator roles ${this.o.instanceId}`.slice(0, 63),
      keepAlive: true,
    });
    c.on('error', () => undefined); // 'end' follows
    try {
      await c.connect();
    } catch (raw) {
      this.failures++;
      this.retryAt = Date.now() + backoffDelay(this.failures, { baseMs: 500, maxMs: 10_000 });
      if (this.failures === 1 || this.failures % 10 === 0)
        this.o.logger.warn({ err: coerceError(raw).message }, 'leadership: database unreachable');
      await c.end().catch(() => undefined);
      return;
    }
    this.failures = 0;
    this.client = c;
    c.once('end', () => {
      if (this.client !== c) return;
      this.client = undefined;
      // The locks went with the connection: every role is free for any replica now.
      for (const role of this.held) this.events.push({ role, taken: false, at: Date.now() });
      if (this.held.size > 0 && !this.stopped)
        this.o.logger.warn({ roles: [...this.held] }, 'leadership: lock connection lost; roles released');
      this.held.clear();
    });
  }
}
