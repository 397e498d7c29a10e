/**
 * The HTTP listener. `close()` stops accepting, lets in-flight requests finish within the grace
 * period, then cuts whatever is left.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { AppEnv } from './app.ts';

export interface HttpServer {
  port: number;
  close(graceMs: number): Promise<void>;
}

export function startHttpServer(app: Hono<AppEnv>, opts: { host: string; port: number }): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: opts.host, port: opts.port }) as Server;
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        close: (graceMs) =>
          new Promise<void>((done) => {
            const force = setTimeout(() => server.closeAllConnections(), graceMs);
            server.close(() => {
              clearTimeout(force);
              done();
            });
            // Keep-alive sockets with no request in flight would hold close() open.
            server.closeIdleConnections();
          }),
      });
    });
  });
}
