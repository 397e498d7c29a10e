import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Config } from '../config.ts';
import { clientIp } from './context.ts';

type TrustConfig = Pick<Config, 'uiProxy' | 'http'>;
const http = {
  host: '127.0.0.1',
  port: 0,
  bodyLimitBytes: 1,
  shutdownGraceMs: 1,
  authFailures: { maxPerIp: 1, windowMs: 1 },
};
const proxy = (trustedCidrs: string[] | undefined): TrustConfig['uiProxy'] => ({
  userHeader: 'x-remote-user',
  roleHeader: undefined,
  defaultRole: 'viewer',
  secret: trustedCidrs ? undefined : 's3cret',
  secretHeader: 'x-proxy-secret',
  trustedCidrs,
});

/** The address the journal and audit would record for a request from `peer` carrying `fwd`. */
async function recorded(config: TrustConfig, peer: string, fwd?: string): Promise<string | null> {
  const app = new Hono();
  app.get('/', (c) => c.json({ ip: clientIp(c, config) }));
  const env = { incoming: { socket: { remoteAddress: peer, remotePort: 1, remoteFamily: 'IPv4' } } };
  const res = await app.request('/', { headers: fwd ? { 'x-forwarded-for': fwd } : {} }, env);
  return ((await res.json()) as { ip: string | null }).ip;
}

describe('clientIp (the address in the journal and the audit trail)', () => {
  it('without TRUST_PROXY, X-Forwarded-For is ignored', async () => {
    const config = { http: { ...http, trustProxy: false }, uiProxy: undefined };
    expect(await recorded(config, '192.0.2.7', '10.9.9.9')).toBe('192.0.2.7');
  });

  it('with TRUST_PROXY and no trusted CIDRs, the first hop of X-Forwarded-For', async () => {
    const config = { http: { ...http, trustProxy: true }, uiProxy: proxy(undefined) };
    expect(await recorded(config, '192.0.2.7', '10.9.9.9, 192.0.2.7')).toBe('10.9.9.9');
    // Not an address: the peer is recorded, not the header's text.
    expect(await recorded(config, '192.0.2.7', 'ÉOÒßã, 10.9.9.9')).toBe('192.0.2.7');
    expect(await recorded(config, '192.0.2.7', `${'9'.repeat(60)}`)).toBe('192.0.2.7');
  });

  it('with UI_PROXY_TRUSTED_CIDRS, only a peer in them names the client; anyone else is recorded as itself', async () => {
    const config = { http: { ...http, trustProxy: true }, uiProxy: proxy(['127.0.0.0/8']) };
    expect(await recorded(config, '127.0.0.1', '10.9.9.9')).toBe('10.9.9.9');
    expect(await recorded(config, '192.0.2.7', '10.9.9.9')).toBe('192.0.2.7');
    expect(await recorded(config, '::ffff:192.0.2.7', '10.9.9.9')).toBe('192.0.2.7');
  });
});
