/**
 * What every engine effect is given (database, logger, the UYUNI, Salt and Prometheus clients), and
 * the calls that turn an unreachable UYUNI or Salt into the error class the machine retries
 * (TransientError → pending_retry).
 */
import type { Logger } from '../logger.ts';
import { TransientError } from '../machines/effects.ts';
import type { Clock } from '../persistence/clock.ts';
import type { Db } from '../persistence/db.ts';
import type { PrometheusClient } from '../services/prometheus/client.ts';
import { SaltUnavailable, type SaltClient } from '../services/salt/client.ts';
import { UyuniUnavailable, type UyuniClient, type UyuniSession } from '../services/uyuni/client.ts';

export interface EngineDeps {
  db: Db;
  logger: Logger;
  /**
   * The one clock (the database's, DESIGN.md §3 rule 3): maintenance windows and reboot requests
   * are judged on it, as the machine's deadlines are.
   */
  clock: Clock;
  uyuni: UyuniClient;
  salt: SaltClient;
  /** Absent: no Prometheus configured (service checks through Salt only). */
  prometheus?: PrometheusClient | undefined;
}

export async function uyuniCall<T>(e: EngineDeps, fn: (s: UyuniSession) => Promise<T>): Promise<T> {
  try {
    return await fn(await e.uyuni.shared());
  } catch (raw) {
    if (raw instanceof UyuniUnavailable) throw new TransientError(raw.message, { cause: raw });
    throw raw;
  }
}

export async function saltCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (raw) {
    if (raw instanceof SaltUnavailable) throw new TransientError(raw.message, { cause: raw });
    throw raw;
  }
}
