/**
 * The dashboard in a real browser (playwright-core driving Debian's chromium) against the real
 * daemon and the lab world: sign in; filter the queue; open an entry pending approval and see its
 * evidence; snooze it with a date; approve another; follow it in the inspector; roll back the
 * failed systems of its halted deployment; a viewer sees no decision buttons and a forged POST
 * from a viewer is refused; a cross-site form POST is refused; no console errors. Screenshots of
 * each page go to test-results/ (not committed).
 */
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE_LAB_CONFIG, engineFleet } from '../src/lab/fleet.ts';
import { LabWorld } from '../src/lab/world.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { adminToken, api, labEngineEnv } from './helpers/daemon.ts';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startChild, waitForHttp, waitUntil, type Child } from './helpers/proc.ts';
import { issueToken } from './helpers/tokens.ts';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const SHOTS = 'test-results/dashboard';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const world = new LabWorld(engineFleet(6), { pickupMs: 100, runMs: 300, rebootMs: 800 });
let child: Child;
let base: string;
let call: ReturnType<typeof api>;
let adminTok: string;
let viewerTok: string;
let browser: Browser;
let attacker: Server;
const consoleErrors: string[] = [];
const ids: Record<string, number> = {};

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (.ci/run does)`);
  mkdirSync(SHOTS, { recursive: true });
  t = await createTestDatabase();
  const urls = await world.start();
  await setConfigValue(
    t.db,
    'test_thresholds',
    {
      cpu_delta_percent: 20,
      memory_delta_percent: 15,
      max_failed_services: 0,
      wait_after_patch_seconds: 10,
      wait_after_reboot_seconds: 10,
      reboot_timeout_seconds: 300,
      step_timeout_seconds: 600,
      retry_base_seconds: 10,
      retry_max_seconds: 20,
      retry_max_attempts: 8,
      poll_seconds: 2,
      metrics_window_seconds: 5,
      time_scale_ms: 100,
    },
    'test',
  );
  for (const [k, v] of Object.entries(ENGINE_LAB_CONFIG)) await setConfigValue(t.db, k, v, 'test');
  await setConfigValue(
    t.db,
    'rollout_policy',
    {
      canary_systems: 1,
      wave_percentages: [50, 100],
      max_failed_systems: 1,
      max_failed_percent: 100,
      min_window_remaining_minutes: 0,
    },
    'test',
  );
  // 6120-1 breaks nginx on the two systems of the second wave: its deployment halts.
  const prod = world.fleet.systems.filter((s) => s.group === 'prod-ubuntu-web').sort((a, b) => a.id - b.id);
  world.scenario('6120-1', { breaksService: 'nginx.service', onlySystems: [prod[1]!.id, prod[2]!.id] });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = startChild(
    ['serve'],
    labEngineEnv(urls, {
      DATABASE_URL: t.url,
      HTTP_PORT: String(port),
      INSTANCE_ID: 'ui-e2e',
      SCHEDULER_POLL_MS: '200',
    }),
  );
  await waitForHttp(`${base}/api/v1/health`, 30_000, child);
  adminTok = await adminToken(t.db);
  const g = await issueToken(t.db, 'vera-viewer', 'viewer');
  viewerTok = g.token;
  call = api(`${base}/api/v1`, adminTok);
  await until(async () => (await call('GET', '/sync/status')).body?.last_run?.status === 'completed', 30_000);
  for (const e of ['6100-1', '6121-1', '6120-1'])
    ids[e] = (await call('POST', '/queue', { errata_ids: [e] })).body.results[0].id;
  for (const id of Object.values(ids))
    await until(async () => (await call('GET', `/queue/${id}`)).body.entry.status === 'pending_approval', 60_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  // A page on another origin that posts a form to the dashboard (CSRF attempt).
  const attackerPort = await freePort();
  attacker = createServer((_, res) =>
    res
      .writeHead(200, { 'content-type': 'text/html' })
      .end(
        `<form id="f" method="post" action="${base}/ui/approvals/${ids['6100-1']}/approve"><input name="csrf" value="guess"></form><button id="go" onclick="document.getElementById('f').submit()">go</button>`,
      ),
  );
  await new Promise<void>((r) => attacker.listen(attackerPort, '127.0.0.1', () => r()));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  attacker?.close();
  child?.proc.kill('SIGTERM');
  await child?.exited;
  await world.stop();
  await t?.drop();
});

const until = (fn: () => Promise<boolean>, ms: number) => waitUntil(fn, ms, 'the daemon', { child: () => child });

async function signedIn(token: string, watchConsole = true): Promise<Page> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  if (watchConsole) {
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(`${page.url()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  }
  await page.goto(`${base}/ui`);
  expect(page.url()).toContain('/ui/login');
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/ui`);
  return page;
}
const shot = (page: Page, name: string) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });

describe('dashboard in a real browser', () => {
  it('an approver signs in, filters the queue, sees the evidence, snoozes one, approves another, follows it and rolls back failed systems', async () => {
    const page = await signedIn(adminTok);
    expect(await page.locator('h1').innerText()).toBe('Queue');
    await shot(page, 'queue');
    await page.getByLabel('Status', { exact: true }).selectOption('pending_approval');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/status=pending_approval/);
    expect(await page.locator('tbody tr').count()).toBe(3);
    await page.getByLabel('Search').fill('6120');
    await page.getByLabel('Sort by').selectOption('oldest');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/q=6120/);
    expect(await page.locator('#queue-table tbody tr').count()).toBe(1);
    expect(await page.locator('#queue-table tbody').innerText()).toContain('6120-1');

    // Entry pending approval: evidence, then snooze with a date.
    await page.goto(`${base}/ui/entries/${ids['6121-1']}`);
    await page.getByRole('heading', { name: 'Evidence' }).waitFor();
    const evidence = await page.locator('section[aria-labelledby="h-evidence"]').innerText();
    expect(evidence).toContain('failed_services');
    expect(evidence).toMatch(/nginx\.service: active/);
    expect(evidence).toMatch(/snapshot[\s\S]*baseline[\s\S]*apply[\s\S]*validate/);
    await shot(page, 'entry');
    const until2 = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
    await page.getByLabel('Reason for snoozing').fill('wait for the vendor fix');
    await page.getByLabel('until').fill(until2);
    await page.getByRole('button', { name: 'Snooze' }).click();
    expect(await page.getByRole('status').innerText()).toContain(`snoozed entry ${ids['6121-1']}`);
    expect((await call('GET', `/queue/${ids['6121-1']}`)).body.entry.status).toBe('snoozed');

    // Approvals page: approve 6120-1.
    await page.goto(`${base}/ui/approvals`);
    await shot(page, 'approvals');
    const row = page.locator('tr', { hasText: '6120-1' });
    await row.getByRole('button', { name: 'Approve' }).click();
    expect(await page.getByRole('status').innerText()).toContain(`approved entry ${ids['6120-1']}`);

    // The inspector follows it to the halt.
    await until(
      async () => (await call('GET', `/queue/${ids['6120-1']}`)).body.entry.status === 'needs_attention',
      90_000,
    );
    await page.goto(`${base}/ui/inspector/${ids['6120-1']}`);
    expect(await page.locator('#current-state').innerText()).toBe('needs_attention');
    expect(await page.locator('svg.machine g.current').getAttribute('data-state')).toBe('needs_attention');
    expect(await page.locator('svg.machine g.visited').count()).toBeGreaterThan(5);
    await shot(page, 'inspector');

    // Deployments: the halted one, failed systems pre-selected; roll them back at package level.
    await page.goto(`${base}/ui/deployments`);
    await shot(page, 'deployments');
    await page.locator('tr', { hasText: '6120-1' }).getByRole('link').first().click();
    expect(await page.locator('main').innerText()).toContain('halted');
    await shot(page, 'deployment');
    expect(await page.locator('input[name="systems"]:checked').count()).toBe(2);
    await page.getByLabel('Reason').fill('nginx down on two nodes');
    await page.getByLabel(/I understand/).check();
    await page.getByRole('button', { name: 'Roll back selected' }).click();
    expect(await page.getByRole('status').innerText()).toContain('package rollback of 2 system(s) started');
    await until(async () => (await call('GET', `/queue/${ids['6120-1']}`)).body.entry.status === 'rolled_back', 60_000);

    for (const [path, name] of [
      ['/ui/tests', 'tests'],
      ['/ui/reports', 'reports'],
      ['/ui/sync', 'sync'],
    ] as const) {
      await page.goto(`${base}${path}`);
      await shot(page, name);
      if (name === 'reports')
        expect(await page.locator('main').innerText()).toMatch(/Security Advisories deployed[\s\S]*Queue by status/);
    }
    expect(await page.locator('main').innerText()).toContain('completed');
  }, 240_000);

  it('a viewer sees no decision buttons, and a forged POST from a viewer is refused', async () => {
    const page = await signedIn(viewerTok);
    await page.goto(`${base}/ui/approvals`);
    expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    await page.goto(`${base}/ui/entries/${ids['6100-1']}`);
    expect(await page.getByRole('button', { name: /Approve|Reject|Snooze/ }).count()).toBe(0);
    // Forge the approve form with the viewer's own valid CSRF token (from the sign-out form).
    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    const forged = await page.evaluate(
      async ([id, token]) => {
        const r = await fetch(`/ui/approvals/${id}/approve`, {
          method: 'POST',
          body: new URLSearchParams({ csrf: token! }),
          redirect: 'follow',
        });
        return { url: r.url, text: await r.text() };
      },
      [String(ids['6100-1']), csrf],
    );
    expect(forged.text).toContain('needs the approver role');
    expect((await call('GET', `/queue/${ids['6100-1']}`)).body.entry.status).toBe('pending_approval');
  }, 60_000);

  it('a cross-site form POST is refused, even with the session cookie', async () => {
    const page = await signedIn(adminTok, false); // the refusal itself is a 403 the browser logs
    await page.goto(`http://127.0.0.1:${(attacker.address() as { port: number }).port}/`);
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().includes('/ui/approvals/')),
      page.click('#go'),
    ]);
    expect(res.status()).toBe(403);
    expect(await res.text()).toContain('cross-site request refused');
    expect((await call('GET', `/queue/${ids['6100-1']}`)).body.entry.status).toBe('pending_approval');
  }, 60_000);

  it('no page logged a console error', () => {
    expect(consoleErrors).toEqual([]);
  });
});
