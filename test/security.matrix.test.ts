/**
 * The role × route matrix (issue 12), generated from the route table (src/http/routes/table.ts):
 * docs/security.md's table must be the code's table, cell for cell, and the running API must answer
 * every cell as the table says — 401 without a token, 403 `forbidden` below the route's role,
 * neither at or above it, and never a 5xx from the guard.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.ts';
import { deploymentRoutes } from '../src/http/routes/deployments.ts';
import { queueRoutes } from '../src/http/routes/queue.ts';
import { reportRoutes } from '../src/http/routes/reports.ts';
import { riskProfileRoutes } from '../src/http/routes/riskProfile.ts';
import { syncRoutes } from '../src/http/routes/sync.ts';
import { API_ROUTES } from '../src/http/routes/table.ts';
import type { ActorSystem } from '../src/machines/system.ts';
import { ROLES, roleAtLeast, type Role } from '../src/services/tokens.ts';
import { FAST_SETTINGS, startTestSystem } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { baseDeps } from './helpers/deps.ts';
import { issueToken } from './helpers/tokens.ts';

type Column = 'anonymous' | Role;
const COLUMNS: Column[] = ['anonymous', ...ROLES];
type Cell = 'allowed' | 'elevated' | 'refused';

/** The role matrix of docs/security.md: `METHOD path` → cell by column. */
function docMatrix(): Map<string, Record<Column, Cell>> {
  const text = readFileSync(new URL('../docs/security.md', import.meta.url), 'utf8');
  const lines = text.split('\n');
  const head = lines.findIndex((l) => /^\|\s*Method\s*\|\s*Path\s*\|/.test(l));
  expect(head, 'docs/security.md has the role matrix').toBeGreaterThanOrEqual(0);
  const cols = lines[head]!.split('|')
    .slice(1, -1)
    .map((c) => c.trim());
  expect(cols).toEqual(['Method', 'Path', ...COLUMNS]);
  const out = new Map<string, Record<Column, Cell>>();
  for (const line of lines.slice(head + 2)) {
    if (!line.startsWith('|')) break;
    const [method, path, ...cells] = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const row = {} as Record<Column, Cell>;
    COLUMNS.forEach((col, i) => {
      const c = cells[i];
      row[col] = c === '✓' ? 'allowed' : c === '✓¹' ? 'elevated' : c === '—' ? 'refused' : (`bad cell ${c}` as Cell);
    });
    const key = `${method} ${path!.replace(/`/g, '')}`;
    expect(out.has(key), `${key} listed once`).toBe(false);
    out.set(key, row);
  }
  return out;
}

/** What the code's table says of one cell. */
function codeCell(route: (typeof API_ROUTES)[number], col: Column): Cell {
  if (route.role === null) return 'allowed';
  if (col === 'anonymous' || !roleAtLeast(col, route.role)) return 'refused';
  return route.elevation && !roleAtLeast(col, route.elevation.role) ? 'elevated' : 'allowed';
}

let t: Awaited<ReturnType<typeof createTestDatabase>>;
let sys: ActorSystem;
let app: ReturnType<typeof createApp>;
const tokens = {} as Record<Role, string>;

beforeAll(async () => {
  t = await createTestDatabase();
  ({ sys } = await startTestSystem(t.db));
  const deps = baseDeps(t.db);
  // Every route module, as the daemon mounts them (no UYUNI, no test engine).
  app = createApp(deps, [
    queueRoutes({
      ...deps,
      actors: sys.host,
      clock: sys.clock,
      settings: async () => FAST_SETTINGS,
      testEngine: { available: false, reason: 'matrix test' },
    }),
    syncRoutes({ ...deps, sync: undefined }),
    riskProfileRoutes({ ...deps, uyuni: undefined }),
    deploymentRoutes({ ...deps, actors: sys.host }),
    reportRoutes(deps),
  ]);
  for (const role of ROLES) {
    const g = await issueToken(t.db, `matrix-${role}`, role);
    tokens[role] = g.token;
  }
});
afterAll(async () => {
  await sys.stop();
  await t.drop();
});

describe('role × route matrix', () => {
  it('docs/security.md lists exactly the routes of the code, with the same cells', () => {
    const doc = docMatrix();
    const code = new Map(API_ROUTES.map((r) => [`${r.method} ${r.path}`, r]));
    expect([...doc.keys()].sort()).toEqual([...code.keys()].sort());
    let cells = 0;
    for (const [key, r] of code) {
      for (const col of COLUMNS) {
        expect(doc.get(key)![col], `${key} × ${col}`).toBe(codeCell(r, col));
        cells++;
      }
    }
    expect(cells).toBe(API_ROUTES.length * COLUMNS.length);
  });

  it('the API answers every cell as the table says (100 % of cells)', async () => {
    const mismatches: string[] = [];
    let checked = 0;
    for (const r of API_ROUTES) {
      const path = r.path.replace(':errata_id', 'NOPE-0000-0').replace(':id', '999999999');
      for (const col of COLUMNS) {
        const want = codeCell(r, col);
        const headers: Record<string, string> = col === 'anonymous' ? {} : { authorization: `Bearer ${tokens[col]}` };
        const init: RequestInit =
          r.method === 'GET'
            ? { headers }
            : { method: r.method, headers: { ...headers, 'content-type': 'application/json' }, body: '{}' };
        const res = await app.request(`/api/v1${path}`, init);
        const body = (await res.json().catch(() => null)) as {
          error?: { code?: string; details?: { required_role?: string } };
        } | null;
        checked++;
        const where = `${r.method} ${r.path} × ${col}: ${res.status} ${body?.error?.code ?? ''}`;
        if (res.status >= 500 && res.status !== 503) mismatches.push(`${where} (5xx)`);
        if (want === 'refused') {
          if (
            col === 'anonymous'
              ? res.status !== 401
              : res.status !== 403 || body?.error?.code !== 'forbidden' || body.error.details?.required_role !== r.role
          ) {
            mismatches.push(`${where} (expected refusal)`);
          }
        } else if (res.status === 401 || res.status === 403) {
          mismatches.push(`${where} (expected access)`);
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(API_ROUTES.length * COLUMNS.length);
  });
});
