/**
 * One short run of the database chaos harness (the full one is `npm run chaos:db`): the daemon's
 * PostgreSQL connections are reset, stalled, blackholed and lose COMMIT acknowledgements at random,
 * and no workflow may be duplicated, lost, left unfinished or failed because of it.
 */
import { describe, expect, it } from 'vitest';
import { lastLine, runChaosDb } from './chaos/dbHarness.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('chaos-db (short run)', () => {
  it('database cuts at random: 0 duplicates, 0 lost, 100 % final, 0 db failures, every blackhole noticed', async () => {
    const t = await createTestDatabase();
    try {
      const r = await runChaosDb({
        dbUrl: t.url,
        workflows: 60,
        cuts: 25,
        seed: 7,
        concurrency: 8,
        timeoutMs: 110_000,
        stuckMs: 20_000,
        // A silent connection is given up after two query timeouts at most (the statement, then its
        // transaction's ROLLBACK on the same connection): 2 × (5 s + 5 s) with the harness's settings.
        blackholeGraceMs: 25_000,
      });
      const problems = r.details.filter((d) => !d.startsWith('info:'));
      expect({ line: lastLine(r), problems }).toEqual({
        line: `chaos-db: cuts=${r.cuts} workflows=60 duplicates=0 lost=0 unfinished=0 db_failures=0`,
        problems: [],
      });
      expect(r.cuts).toBeGreaterThanOrEqual(25);
      expect(r).toMatchObject({ unnoticedBlackholes: 0, daemonExits: 0 });
    } finally {
      await t.drop();
    }
  }, 180_000);
});
