/**
 * Whether a request really comes from the trusted reverse proxy, and who the client is.
 *
 * Proxy sign-in (UI_PROXY_USER_HEADER) is accepted only when the request carries the proxy's
 * shared secret (UI_PROXY_SECRET in UI_PROXY_SECRET_HEADER, compared in constant time) and/or its
 * TCP peer is in UI_PROXY_TRUSTED_CIDRS — both when both are set. The peer is the socket's address,
 * never X-Forwarded-For (which any client can write). `parseConfig` refuses proxy sign-in with
 * neither.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import type { Config } from '../config.ts';

/** The socket's remote address (IPv4-mapped IPv6 as plain IPv4), or null without a socket (`app.request()`). */
export function peerAddress(c: Context): string | null {
  try {
    const a = getConnInfo(c).remote.address;
    if (!a) return null;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
    return mapped ? mapped[1]! : a;
  } catch {
    return null;
  }
}

/**
 * A matcher for addresses in `cidrs` (`10.0.0.0/8`, `fd00::/64`, `127.0.0.1`).
 * @example
 * const trusted = cidrMatcher(['127.0.0.0/8']); trusted('127.0.0.1') // true
 */
export function cidrMatcher(cidrs: readonly string[]): (address: string | null) => boolean {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [addr = '', bits] = cidr.split('/');
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return (address) => {
    if (address === null) return false;
    const family = isIP(address);
    return family !== 0 && list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/** Constant-time equality of two strings of any length (both hashed first, so the length does not leak). */
export function secretEquals(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** What decides whether a request comes from the trusted proxy. */
export interface ProxyTrust {
  /** Null when the request comes from the proxy, else why not (for the log; never echoes the header). */
  refusal(c: Context): string | null;
  /** The client's address: X-Forwarded-For's first hop from the trusted proxy, else the socket's. */
  clientAddress(c: Context): string;
}

/**
 * The proxy check for this configuration.
 * @example
 * const trust = proxyTrust(config); if (trust.refusal(c)) return c.text('refused', 403);
 */
export function proxyTrust(config: Pick<Config, 'uiProxy' | 'http'>): ProxyTrust {
  const proxy = config.uiProxy;
  const inCidrs = proxy?.trustedCidrs ? cidrMatcher(proxy.trustedCidrs) : null;
  function refusal(c: Context): string | null {
    if (!proxy) return 'proxy sign-in is not configured';
    if (proxy.secret !== undefined && !secretEquals(c.req.header(proxy.secretHeader), proxy.secret)) {
      return `missing or wrong ${proxy.secretHeader}`;
    }
    if (inCidrs !== null && !inCidrs(peerAddress(c)))
      return `peer ${peerAddress(c) ?? '(none)'} is not in UI_PROXY_TRUSTED_CIDRS`;
    return null;
  }
  function clientAddress(c: Context): string {
    const peer = peerAddress(c);
    const fromProxy = config.http.trustProxy && (inCidrs === null || inCidrs(peer));
    const fwd = fromProxy ? c.req.header('x-forwarded-for')?.split(',')[0]?.trim() : undefined;
    // Only an address names the client: junk in the header is the proxy's (or a forger's), not an address.
    return (fwd !== undefined && isIP(fwd) !== 0 ? fwd : peer || 'unknown').slice(0, 45);
  }
  return { refusal, clientAddress };
}
