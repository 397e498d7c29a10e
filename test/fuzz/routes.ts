/**
 * The daemon's route table, as the fuzzer enumerates it: the application built from the same route
 * modules `src/daemon.ts` mounts (API, dashboard, /metrics), its `app.routes` read back. Nothing is
 * listed by hand: a route added to a module is fuzzed. `daemonModulesDrift` compares the modules
 * named here with the ones daemon.ts calls, so a new module cannot be missed silently.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { parseConfig } from '../../src/config.ts';
import { createApp } from '../../src/http/app.ts';
import { dashboardRoutes } from '../../src/http/dashboard/index.ts';
import { deploymentRoutes } from '../../src/http/routes/deployments.ts';
import { metricsRoutes } from '../../src/http/routes/metrics.ts';
import { queueRoutes } from '../../src/http/routes/queue.ts';
import { reportRoutes } from '../../src/http/routes/reports.ts';
import { riskProfileRoutes } from '../../src/http/routes/riskProfile.ts';
import { syncRoutes } from '../../src/http/routes/sync.ts';
import type { BaseDeps } from '../../src/interfaces.ts';

/** The route modules daemon.ts mounts, by the name it calls them. */
export const MODULES = [
  'queueRoutes',
  'syncRoutes',
  'riskProfileRoutes',
  'deploymentRoutes',
  'reportRoutes',
  'dashboardRoutes',
  'metricsRoutes',
];

export interface Route {
  method: string;
  path: string;
}

/** Module names daemon.ts calls that this file does not (or the reverse); empty when in step. */
export function daemonModulesDrift(daemonSource = readFileSync('src/daemon.ts', 'utf8')): string[] {
  const called = new Set([...daemonSource.matchAll(/\b([a-z]\w*Routes)\(/g)].map((m) => m[1]!));
  const mine = new Set(MODULES);
  return [
    ...[...called].filter((n) => !mine.has(n)).map((n) => `daemon.ts mounts ${n}, the fuzzer does not`),
    ...MODULES.filter((n) => !called.has(n)).map((n) => `the fuzzer mounts ${n}, daemon.ts does not`),
  ];
}

/** Every (method, path) the daemon's application answers, wildcard middleware excluded. */
export function enumerateRoutes(env: Record<string, string> = {}): Route[] {
  const config = parseConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env });
  const noDb = new Proxy({}, { get: () => () => Promise.reject(new Error('route enumeration has no database')) });
  const deps: BaseDeps = {
    config,
    logger: pino({ level: 'silent' }),
    db: noDb as never,
    version: 'fuzz',
    startedAt: Date.now(),
    lifecycle: { state: 'running' },
  };
  const none = undefined as never;
  const app = createApp(
    deps,
    [
      queueRoutes({
        ...deps,
        actors: none,
        clock: none,
        settings: none,
        testEngine: { available: true, reason: null },
      }),
      syncRoutes({ ...deps, sync: undefined }),
      riskProfileRoutes({ ...deps, uyuni: undefined }),
      deploymentRoutes({ ...deps, actors: none }),
      reportRoutes(deps),
    ],
    [(root) => dashboardRoutes(deps, root), metricsRoutes({ ...deps, metrics: none })],
  );
  const seen = new Set<string>();
  const out: Route[] = [];
  for (const r of app.routes) {
    if (r.method === 'ALL' || r.path.endsWith('*')) continue;
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ method: r.method, path: r.path });
  }
  return out;
}
