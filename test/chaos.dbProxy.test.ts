/**
 * The database chaos proxy does what the harness counts on: a dropped COMMIT acknowledgement
 * (simple and extended protocol, and a single write outside a transaction) is committed on the
 * server while the client sees the connection fail; a stall delays; a blackhole is never answered.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbProxy } from './chaos/dbProxy.ts';
import { createTestDatabase } from './helpers/db.ts';

describe('chaos db proxy', () => {
  let t: Awaited<ReturnType<typeof createTestDatabase>>;
  let proxy: DbProxy;
  let direct: pg.Client;
  const clients: pg.Client[] = [];
  const client = async () => {
    const c = new pg.Client({ connectionString: proxy.url(t.url) });
    c.on('error', () => undefined);
    await c.connect();
    clients.push(c);
    return c;
  };
  const count = async () => Number((await direct.query('SELECT count(*) AS n FROM proxy_probe')).rows[0].n);

  beforeAll(async () => {
    t = await createTestDatabase({ migrated: false });
    const u = new URL(t.url);
    proxy = await DbProxy.start({ upstreamHost: u.hostname, upstreamPort: Number(u.port), seed: 1 });
    direct = new pg.Client({ connectionString: t.url });
    await direct.connect();
    await direct.query('CREATE TABLE proxy_probe (x int)');
  });
  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    await direct.end();
    await proxy.close();
    await t.drop();
  });

  it.each(['simple', 'extended'] as const)(
    'drops the acknowledgement of a COMMIT (%s protocol) after the server committed it',
    async (mode) => {
      const c = await client();
      const before = await count();
      await c.query('BEGIN');
      await c.query('INSERT INTO proxy_probe VALUES (1)');
      const fired = proxy.dropNextAck('commit_ack');
      const commit = mode === 'simple' ? c.query('COMMIT') : c.query({ text: 'COMMIT', values: [] });
      await expect(commit).rejects.toThrow(/ECONNRESET|Connection terminated/);
      await fired;
      expect(await count()).toBe(before + 1);
    },
  );

  it('drops the acknowledgement of a single write outside a transaction, not of a read', async () => {
    const c = await client();
    const before = await count();
    const n = proxy.counts.autocommit_ack;
    void proxy.dropNextAck('autocommit_ack');
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await expect(c.query('INSERT INTO proxy_probe VALUES ($1)', [2])).rejects.toThrow(
      /ECONNRESET|Connection terminated/,
    );
    expect(await count()).toBe(before + 1);
    expect(proxy.counts.autocommit_ack).toBe(n + 1);
  });

  it('a stall delays, a reset fails, a blackhole is never answered', async () => {
    const c = await client();
    const t0 = Date.now();
    proxy.stallAll(400);
    await c.query('SELECT 1');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);

    const r = await client();
    const link = proxy.connections().at(-1)!;
    expect(proxy.reset(link.id)).toBe(true);
    await expect(r.query('SELECT 1')).rejects.toThrow();

    const b = await client();
    const hole = proxy.connections().at(-1)!;
    expect(proxy.blackhole(hole.id)).toBe(true);
    const q = b.query('SELECT 1').then(
      () => 'answered',
      () => 'failed',
    );
    expect(await Promise.race([q, new Promise((res) => setTimeout(() => res('no answer'), 1000))])).toBe('no answer');
    expect(proxy.hangingBlackholes(500)).toMatchObject([{ id: hole.id, waiting: true }]);
    proxy.closeLink(hole.id);
    expect(await q).toBe('failed');
  });
});
