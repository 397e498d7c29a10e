/**
 * A newcomer's run: `spm-orchestrator lab` starts everything, prints an admin token, and the API
 * soon lists queued entries with scores and a completed sync; SIGTERM stops it all.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startChild } from './helpers/proc.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('npm run lab', () => {
  it('prints the API and an admin token; the queue fills with scored Security Advisories', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spm-lab-'));
    chmodSync(dir, 0o755);
    dirs.push(dir);
    const port = await freePort();
    const child = startChild(['lab'], {
      LAB_PG_DIR: path.join(dir, 'pg'),
      LAB_PG_PORT: String(await freePort()),
      HTTP_PORT: String(port),
      INSTANCE_ID: 'lab-test',
      LAB_PROMETHEUS_DIR: path.join(dir, 'prom'),
    });
    let token = '';
    for (let i = 0; i < 600 && !token; i++) {
      if (child.proc.exitCode !== null) throw new Error(`lab exited: ${child.stderr()}`);
      token = /^admin token: (spm_\S+)$/m.exec(child.stdout())?.[1] ?? '';
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(token).toMatch(/^spm_/);
    expect(child.stdout()).toMatch(new RegExp(`API: http://127\\.0\\.0\\.1:${port}/api/v1`));
    expect(child.stdout()).toContain(`lab database: embedded PostgreSQL ${path.join(dir, 'pg')} on 127.0.0.1:`);
    const get = async (p: string) =>
      (
        await fetch(`http://127.0.0.1:${port}/api/v1${p}`, { headers: { authorization: `Bearer ${token}` } })
      ).json() as Promise<any>;
    let queue: any = { total: 0 };
    for (let i = 0; i < 300 && queue.total < 500; i++) {
      queue = await get('/queue?limit=5');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(queue.total).toBeGreaterThan(500);
    expect(queue.items[0]).toMatchObject({ success_score: expect.any(Number), risk_level: expect.any(String) });
    // The sync cycle includes the risk profiling of what it queued: wait for it to end.
    let status: any = {};
    for (let i = 0; i < 300 && status.last_run?.status !== 'completed'; i++) {
      status = await get('/sync/status');
      if (status.last_run?.status !== 'completed') await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toMatchObject({ last_run: { status: 'completed', stats: { errata: { total: 634 } } } });
    // The real test engine runs on the two lab test systems: one lane each, one test each started.
    let lanes: any = { lanes: [] };
    for (
      let i = 0;
      i < 100 && !(lanes.lanes.length === 2 && lanes.lanes.every((l: any) => l.entryId !== null || l.completed > 0));
      i++
    ) {
      lanes = await get('/lanes');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(lanes).toMatchObject({ enabled: true, error: null });
    expect(lanes.lanes.map((l: any) => l.os).sort()).toEqual(['rhel', 'ubuntu']);
    expect(lanes.lanes.every((l: any) => l.entryId !== null || l.completed > 0)).toBe(true);
    // The daemon's /metrics has the database's figures, and the lab's Prometheus scrapes it.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^spm_pending_approvals_count \d+$/m);
    expect(metrics).toMatch(/^spm_oldest_pending_approval_hours [\d.]+$/m);
    expect(Number(/^spm_entries\{status="queued"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(400);
    const prom = / Prometheus (http:\/\/127\.0\.0\.1:\d+) /.exec(child.stdout())?.[1];
    if (prom) {
      let scraped: any[] = [];
      for (let i = 0; i < 100 && scraped.length === 0; i++) {
        const r = (await (
          await fetch(
            `${prom}/api/v1/query?query=${encodeURIComponent('spm_entries{job="spm-orchestrator",status="queued"} > 0')}`,
          )
        ).json()) as any;
        scraped = r.data.result;
        if (scraped.length === 0) await new Promise((r) => setTimeout(r, 200));
      }
      expect(scraped).toHaveLength(1);
    }
    child.proc.kill('SIGTERM');
    expect((await child.exited).code).toBe(0);
  }, 120_000);
});
