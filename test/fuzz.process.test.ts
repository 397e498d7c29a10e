/**
 * A short run of the fuzzer (the full one is `npm run fuzz`, 2,000 requests per route): every route
 * of the route table, 50 generated requests each, against the real daemon — no 5xx, every request
 * answered, no state changed by a refused request; and its control: changes made while refused
 * requests are answered are reported, one per request (the check can fail).
 */
import { describe, expect, it } from 'vitest';
import { runFuzz } from './fuzz/harness.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('fuzz (short run)', () => {
  it('50 generated requests per route: 0 5xx, 0 unanswered, 0 state changes from refused requests', async () => {
    const t = await createTestDatabase();
    try {
      const r = await runFuzz({ dbUrl: t.url, perRoute: 50 });
      expect(r.findings.map((f) => `${f.kind} ${f.status} ${f.request} ${f.detail}`)).toEqual([]);
      expect(r.drift).toEqual([]);
      expect(r.routes).toBeGreaterThanOrEqual(60);
      expect(r).toMatchObject({ requests: r.routes * 50, status5xx: 0, stateChanges: 0, noAnswer: 0 });
    } finally {
      await t.drop();
    }
  }, 600_000);

  it('control: a state change during refused requests is detected, each time', async () => {
    const t = await createTestDatabase();
    try {
      const r = await runFuzz({ dbUrl: t.url, perRoute: 15, only: /^(GET|POST) \/api\/v1\/queue$/, controlChanges: 3 });
      expect(r.stateChanges).toBe(3);
      expect(
        r.findings.filter((f) => f.kind === 'state_change').every((f) => f.detail.includes('UPDATE patch_test_queue')),
      ).toBe(true);
    } finally {
      await t.drop();
    }
  }, 300_000);
});
