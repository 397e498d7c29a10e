/** A second process with the same INSTANCE_ID refuses to start (issue 11). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireInstanceLock } from '../src/persistence/instanceLock.ts';
import { ConfigError } from '../src/errors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';
import { FakeWorld } from '../src/lab/fakeWorld.ts';
import { spawnDaemon } from './helpers/daemon.ts';
import { freePort, startChild } from './helpers/proc.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => t.drop());

describe('instance lock', () => {
  it('one holder per INSTANCE_ID; another id is independent; released on release', async () => {
    const lost: string[] = [];
    const a = await acquireInstanceLock(t.url, 'replica-a', silentLogger, (w) => lost.push(w));
    await expect(acquireInstanceLock(t.url, 'replica-a', silentLogger, () => undefined)).rejects.toThrow(ConfigError);
    await expect(acquireInstanceLock(t.url, 'replica-a', silentLogger, () => undefined)).rejects.toThrow(
      /INSTANCE_ID=replica-a/,
    );
    const b = await acquireInstanceLock(t.url, 'replica-b', silentLogger, () => undefined);
    await a.release();
    const again = await acquireInstanceLock(t.url, 'replica-a', silentLogger, () => undefined);
    await again.release();
    await b.release();
    expect(lost).toEqual([]);
  });

  it('a daemon started with the INSTANCE_ID of a running one exits 78 with one clear line, and the first keeps running', async () => {
    const world = new FakeWorld();
    const served = await world.serve();
    const first = await spawnDaemon({ dbUrl: t.url, worldUrl: served.url, instanceId: 'twin' });
    try {
      const port = await freePort();
      const second = startChild(['serve'], {
        DATABASE_URL: t.url,
        INSTANCE_ID: 'twin',
        HTTP_PORT: String(port),
        LOG_LEVEL: 'warn',
        NODE_ENV: 'test',
      });
      const { code } = await second.exited;
      expect(code).toBe(78);
      expect(second.stderr()).toMatch(/another spm-orchestrator process is running with INSTANCE_ID=twin/);
      expect(second.stderr()).not.toMatch(/\bat .+:\d+:\d+/);
      // The first is unaffected.
      expect((await fetch(`${first.base}/health`)).status).toBe(200);
    } finally {
      first.child.proc.kill('SIGTERM');
      await first.child.exited;
      served.server.close();
    }
  });
});
