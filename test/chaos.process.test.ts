/**
 * One short run of the chaos harness (the full one is `npm run chaos`), and its control: with
 * reconciliation disabled the same harness must report duplicate effects — proof the check can fail.
 */
import { describe, expect, it } from 'vitest';
import { runChaos } from './chaos/harness.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('chaos (short run)', () => {
  it('SIGKILLs at random moments: 0 duplicates, 0 lost, 100 % final', async () => {
    const t = await createTestDatabase();
    try {
      const r = await runChaos({
        dbUrl: t.url,
        workflows: 48,
        kills: 8,
        reconcile: true,
        concurrency: 6,
        timeoutMs: 150_000,
      });
      expect(r.details.filter((d) => !d.startsWith('info:'))).toEqual([]);
      expect(r).toMatchObject({ kills: 8, duplicates: 0, lost: 0, unfinished: 0 });
    } finally {
      await t.drop();
    }
  }, 200_000);

  it('control: with reconciliation disabled the harness reports duplicates', async () => {
    const t = await createTestDatabase();
    try {
      const r = await runChaos({
        dbUrl: t.url,
        workflows: 48,
        kills: 8,
        reconcile: false,
        concurrency: 6,
        timeoutMs: 150_000,
      });
      expect(r.duplicates).toBeGreaterThan(0);
      expect(r.lost).toBe(0);
    } finally {
      await t.drop();
    }
  }, 200_000);
});
