import { describe, expect, it } from 'vitest';
import { AppError } from '../../errors.ts';
import type { ActorHost } from '../../machines/host.ts';
import type { Db } from '../../persistence/db.ts';
import { decideBatch } from './approvals.ts';

/** An actor host whose sends succeed, refuse (entry 3: a 409) or lose the database (entry 2). */
function host(sent: number[]): ActorHost {
  return {
    async send(id: number) {
      if (id === 2) throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      if (id === 3) throw new AppError(409, 'invalid_state', 'entry 3 is not pending approval');
      sent.push(id);
      return { status: 'rejected' };
    },
  } as unknown as ActorHost;
}
const meta = { actor: 'alice', ip: null, userAgent: null, requestId: 'r1' };
const deps = (sent: number[]) => ({ db: {} as Db, actors: host(sent), clock: { now: () => 0 } });

describe('decideBatch', () => {
  it('a refused item is reported and the rest go on', async () => {
    const sent: number[] = [];
    const r = await decideBatch(
      deps(sent),
      [
        { id: 1, action: 'reject', reason: 'no' },
        { id: 3, action: 'reject', reason: 'no' },
        { id: 4, action: 'reject', reason: 'no' },
      ],
      meta,
    );
    expect(sent).toEqual([1, 4]);
    expect(r).toMatchObject({ succeeded: 2, failed: 1 });
    expect(r.results[1]).toMatchObject({ id: 3, ok: false, error: { code: 'invalid_state' } });
  });

  it('a database lost mid-batch is not thrown over the decisions already committed: that item is outcome_unknown, the rest not attempted', async () => {
    const sent: number[] = [];
    const r = await decideBatch(
      deps(sent),
      [
        { id: 1, action: 'reject', reason: 'no' },
        { id: 2, action: 'reject', reason: 'no' },
        { id: 4, action: 'reject', reason: 'no' },
      ],
      meta,
    );
    expect(sent).toEqual([1]);
    expect(r.succeeded).toBe(1);
    expect(r.results.map((x) => [x.id, x.ok, x.error?.code ?? null])).toEqual([
      [1, true, null],
      [2, false, 'outcome_unknown'],
      [4, false, 'not_attempted'],
    ]);
    expect(r.results[1]!.error!.message).toMatch(/database was unreachable .*Connection terminated/);
  });
});
