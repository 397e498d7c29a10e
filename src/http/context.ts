/** Request-scoped values shared by middleware and routes. */
import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Role } from '../services/tokens.ts';

export interface Principal {
  tokenId: number;
  name: string;
  role: Role;
}

export type ApiEnv = { Variables: { requestId: string; principal: Principal } };

export function clientIp(c: Context, trustProxy: boolean): string | null {
  if (trustProxy) {
    const fwd = c.req.header('x-forwarded-for');
    if (fwd) return fwd.split(',')[0]!.trim().slice(0, 45);
  }
  try {
    return getConnInfo(c).remote.address?.slice(0, 45) ?? null;
  } catch {
    return null; // app.request() in tests has no socket
  }
}
