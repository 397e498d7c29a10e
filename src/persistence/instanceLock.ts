/**
 * One process per INSTANCE_ID (issue 11). Replicas are told apart by their INSTANCE_ID: it owns
 * entries (leases, epochs) and claims loops. A second process started with the same id would
 * silently take over every live entry of the first, so it must refuse to start instead.
 *
 * The guard is a PostgreSQL session-level advisory lock on the instance id, held by a dedicated
 * connection for the daemon's lifetime: it is released when the process dies (its connection
 * closes), so a crashed replica restarts under the same id at once. When the connection is lost
 * the lock is re-taken on reconnect; if another process took it meanwhile, `onLost` is called and
 * the daemon must stop (it is no longer the only holder of its id).
 */
import pg from 'pg';
import { ConfigError, coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { backoffDelay } from '../transient.ts';

export interface InstanceLock {
  release(): Promise<void>;
}

const lockSql = `SELECT pg_try_advisory_lock(hashtextextended('spm-orchestrator instance ' || $1, 0)) AS ok`;

export async function acquireInstanceLock(
  url: string,
  instanceId: string,
  logger: Logger,
  onLost: (why: string) => void,
): Promise<InstanceLock> {
  let client: pg.Client | undefined;
  let released = false;

  async function connectAndLock(): Promise<boolean> {
    const c = new pg.Client({
      connectionString: url,
      application_name: `spm-orchestrator lock ${instanceId}`.slice(0, 63),
      keepAlive: true,
    });
    c.on('error', () => undefined); // 'end' follows; handled there
    await c.connect();
    const { rows } = await c.query<{ ok: boolean }>(lockSql, [instanceId]);
    if (!rows[0]?.ok) {
      await c.end().catch(() => undefined);
      return false;
    }
    client = c;
    c.once('end', () => {
      if (!released) void relock();
    });
    return true;
  }

  async function relock(): Promise<void> {
    logger.warn({ instance: instanceId }, 'instance lock connection lost; taking the lock again');
    for (let attempt = 1; !released; attempt++) {
      try {
        if (await connectAndLock()) {
          logger.info({ instance: instanceId }, 'instance lock taken again');
          return;
        }
        onLost(`another process took INSTANCE_ID=${instanceId} while the database connection was lost`);
        return;
      } catch (raw) {
        if (attempt === 1 || attempt % 10 === 0)
          logger.warn({ err: coerceError(raw).message }, 'instance lock: database unreachable; retrying');
        await new Promise((r) => setTimeout(r, backoffDelay(attempt, { baseMs: 200, maxMs: 5000 })));
      }
    }
  }

  if (!(await connectAndLock())) {
    throw new ConfigError([
      `INSTANCE_ID: another spm-orchestrator process is running with INSTANCE_ID=${instanceId} on this database; ` +
        'every replica needs its own INSTANCE_ID (the default is the host name): refusing to start',
    ]);
  }
  return {
    async release() {
      released = true;
      await client?.end().catch(() => undefined);
    },
  };
}
