/**
 * One short run of the replica chaos harness (the full one is `npm run chaos:replicas`): three
 * daemons over one database, killed, frozen past their leases and restarted at random while the
 * lanes run tests and operator events go round-robin to all of them. Nothing may be duplicated,
 * lost, left unfinished or run on a busy test system, and the fence must have refused at least one
 * stale write or effect (so the run did exercise a replica that lost its lease).
 */
import { describe, expect, it } from 'vitest';
import { lastLine, runChaosReplicas } from './chaos/replicasHarness.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('chaos-replicas (short run)', () => {
  it('3 replicas, kill -9 / SIGSTOP past the lease / SIGTERM at random: 0 duplicates, 0 lost, 100 % final, 0 lane overlaps, the fence held', async () => {
    const t = await createTestDatabase();
    try {
      const r = await runChaosReplicas({
        dbUrl: t.url,
        workflows: 40,
        faults: 12,
        seed: 11,
        testSystems: 3,
        leaseTtlSeconds: 3,
        // Freezes are what leave a replica running after its lease: most of the faults here.
        weights: { kill: 2, stop: 8, term: 2 },
        drainMs: 30_000,
        timeoutMs: 110_000,
      });
      const problems = r.details.filter((d) => !d.startsWith('info:'));
      expect({ line: lastLine(r), problems }).toEqual({
        line: `chaos-replicas: replicas=3 faults=12 workflows=40 duplicates=0 lost=0 unfinished=0 stale_rejected=${r.staleRejected} lane_overlaps=0`,
        problems: [],
      });
      expect(r.staleRejected).toBeGreaterThan(0);
    } finally {
      await t.drop();
    }
  }, 180_000);
});
