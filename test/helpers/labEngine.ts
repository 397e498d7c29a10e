/**
 * The real engine in process against the lab world (UYUNI XML-RPC and Salt API over HTTP): the
 * world started, the engine's lab configuration and the given thresholds in the database, one UYUNI
 * sync (systems and errata), the database clock and an actor system whose ports are the real
 * engine's. Used by the tests that drive tests and rollouts without a daemon process.
 */
import type { Db } from '../../src/persistence/db.ts';
import { createEnginePorts } from '../../src/engine/index.ts';
import { ENGINE_LAB_CONFIG } from '../../src/lab/fleet.ts';
import type { LabWorld } from '../../src/lab/world.ts';
import type { PatchPorts } from '../../src/machines/effects.ts';
import { startActorSystem, type ActorSystem } from '../../src/machines/system.ts';
import { DbClock } from '../../src/persistence/clock.ts';
import { setConfigValue } from '../../src/persistence/sql/config.ts';
import { SaltClient } from '../../src/services/salt/client.ts';
import { UyuniClient } from '../../src/services/uyuni/client.ts';
import { UyuniSync } from '../../src/services/uyuni/sync.ts';
import { silentLogger } from './deps.ts';

/** Test thresholds on a 50 ms "second", for the in-process engine tests (override what a test needs). */
export const LAB_ENGINE_THRESHOLDS = {
  cpu_delta_percent: 20,
  memory_delta_percent: 15,
  max_failed_services: 0,
  wait_after_patch_seconds: 10,
  wait_after_reboot_seconds: 10,
  reboot_timeout_seconds: 600,
  step_timeout_seconds: 1200,
  retry_base_seconds: 5,
  retry_max_seconds: 20,
  retry_max_attempts: 20,
  poll_seconds: 1,
  metrics_window_seconds: 5,
  time_scale_ms: 50,
};

export interface LabEngine {
  uyuni: UyuniClient;
  salt: SaltClient;
  clock: DbClock;
  /** The engine's ports the actors run (a rollback runner of the test can share them). */
  ports: PatchPorts;
  sys: ActorSystem;
  /** Stop the actors, the clock and the UYUNI session (the world and the database are the caller's). */
  stop(): Promise<void>;
}

/**
 * @example const lab = await startLabEngine(t.db, world, { ownerId: 'lock-test', thresholds: LAB_ENGINE_THRESHOLDS });
 */
export async function startLabEngine(
  db: Db,
  world: LabWorld,
  o: { ownerId: string; thresholds: typeof LAB_ENGINE_THRESHOLDS },
): Promise<LabEngine> {
  const urls = await world.start();
  await setConfigValue(db, 'test_thresholds', o.thresholds, 'test');
  for (const [k, v] of Object.entries(ENGINE_LAB_CONFIG)) await setConfigValue(db, k, v, 'test');
  const uyuni = new UyuniClient({
    url: urls.uyuni,
    user: 'admin',
    password: 'admin',
    verifySsl: true,
    timeoutMs: 5000,
    syncWorkers: 4,
  });
  const salt = new SaltClient({ url: urls.salt, user: 'salt', password: 'salt', eauth: 'pam', timeoutMs: 5000 });
  const sync = new UyuniSync({ db, logger: silentLogger, uyuni, prefixes: ['test-', 'prod-'], testPrefix: 'test-' });
  const report = await sync.run('api');
  if (report.status !== 'completed')
    throw new Error(`lab sync ${report.status}: ${JSON.stringify(report).slice(0, 300)}`);
  const clock = new DbClock(db);
  await clock.start();
  const ports = createEnginePorts({ db, logger: silentLogger, clock, uyuni, salt });
  const sys = await startActorSystem({
    db,
    logger: silentLogger,
    ownerId: o.ownerId,
    leaseTtlMs: 30_000,
    pollMs: 50,
    clock,
    ports,
  });
  return {
    uyuni,
    salt,
    clock,
    ports,
    sys,
    async stop() {
      await sys.stop();
      clock.stop();
      await uyuni.closeShared();
    },
  };
}
