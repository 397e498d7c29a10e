/**
 * The fake world: an in-memory stand-in for UYUNI/Salt/Prometheus used by the state-machine tests,
 * the chaos harness and the actor benchmark. It implements `PatchPorts`, counts every execution by
 * effect key (so "exactly once" can be asserted), remembers results for reconciliation, and can be
 * served over loopback HTTP so that it outlives a daemon killed with SIGKILL.
 *
 * Behaviour is chosen per errata by tokens in its id (e.g. `FAKE-0001-REBOOT-VALFAIL`):
 * REBOOT (reboot required) · APPLYFAIL (UYUNI action fails) · VALFAIL (validation fails) ·
 * INCONCL (no evidence) · NORETURN (host never returns after reboot) · RBFAIL (rollback fails) ·
 * HALT (first production wave halts) · VERIFYFAIL (post-deployment checks fail) · FLAKY (each step's
 * first call fails transiently) · SLOW (every effect takes `slowMs`).
 *
 * Never imported by production code (src/lab).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PatchPorts } from '../machines/effects.ts';
import { EFFECT_NAMES, portsFrom, TransientError } from '../machines/effects.ts';
import type { EffectName, EffectOut, Effects } from '../machines/patch.machine.ts';
import { sleep } from '../engine/timing.ts';

/** Effects that change the outside world: running one twice for one key is a duplicate. */
export const MUTATING_EFFECTS: readonly EffectName[] = [
  'takeSnapshot',
  'applyErrata',
  'scheduleReboot',
  'rollbackTest',
  'notify',
  'promote',
  'planDeployment',
  'deployWave',
  'rollbackProduction',
];

export interface Scenario {
  reboot: boolean;
  applyFail: boolean;
  validation: 'pass' | 'fail' | 'inconclusive';
  noReturn: boolean;
  rollbackFail: boolean;
  halt: boolean;
  verifyFail: boolean;
  flaky: boolean;
  slow: boolean;
}

export function scenarioFor(errataId: string): Scenario {
  const t = new Set(errataId.toUpperCase().split(/[-_:]/));
  return {
    reboot: t.has('REBOOT') || t.has('NORETURN'),
    applyFail: t.has('APPLYFAIL'),
    validation: t.has('VALFAIL') ? 'fail' : t.has('INCONCL') ? 'inconclusive' : 'pass',
    noReturn: t.has('NORETURN'),
    rollbackFail: t.has('RBFAIL'),
    halt: t.has('HALT'),
    verifyFail: t.has('VERIFYFAIL'),
    flaky: t.has('FLAKY'),
    slow: t.has('SLOW'),
  };
}

export interface FakeWorldOptions {
  /** Delay of every effect (ms); SLOW errata use `slowMs`. */
  latencyMs?: number;
  slowMs?: number;
  /** Production waves per deployment. */
  waves?: number;
  /** Delay between an effect happening and its answer (a slow network after the action was accepted). */
  responseDelayMs?: number;
}

export class FakeWorld {
  /** Executions per effect key (mutating and read-only). */
  readonly executions = new Map<string, number>();
  readonly byEffect = new Map<string, number>();
  private readonly results = new Map<string, unknown>();
  private readonly flakyFailed = new Set<string>();
  private nextId = 1000;
  private readonly opts: Required<FakeWorldOptions>;

  constructor(opts: FakeWorldOptions = {}) {
    this.opts = {
      latencyMs: opts.latencyMs ?? 0,
      slowMs: opts.slowMs ?? 2000,
      waves: opts.waves ?? 2,
      responseDelayMs: opts.responseDelayMs ?? 0,
    };
  }

  /** Keys of mutating effects executed more than once. */
  duplicates(): { key: string; count: number }[] {
    const out: { key: string; count: number }[] = [];
    for (const [key, count] of this.executions) {
      const effect = key.split('|')[0] as EffectName;
      if (count > 1 && MUTATING_EFFECTS.includes(effect)) out.push({ key, count });
    }
    return out;
  }

  count(effect: EffectName): number {
    return this.byEffect.get(effect) ?? 0;
  }

  async run<N extends EffectName>(name: N, input: Effects[N]['in'], signal?: AbortSignal): Promise<EffectOut<N>> {
    const sc = scenarioFor(input.errataId);
    const delay = sc.slow ? this.opts.slowMs : this.opts.latencyMs;
    if (delay > 0) await sleep(delay, signal);
    const flakyKey = `${name}|${input.key}`;
    if (sc.flaky && !this.flakyFailed.has(flakyKey) && name !== 'notify') {
      this.flakyFailed.add(flakyKey);
      throw new TransientError(`${name}: dependency unreachable (fake)`);
    }
    const out = this.compute(name, input, sc);
    // Counted only once the effect "happened", as an external system would see it.
    this.executions.set(flakyKey, (this.executions.get(flakyKey) ?? 0) + 1);
    this.byEffect.set(name, (this.byEffect.get(name) ?? 0) + 1);
    this.results.set(flakyKey, out);
    if (this.opts.responseDelayMs > 0) await sleep(this.opts.responseDelayMs);
    return out as EffectOut<N>;
  }

  async reconcile<N extends EffectName>(name: N, input: Effects[N]['in']): Promise<EffectOut<N> | null> {
    return (this.results.get(`${name}|${input.key}`) as EffectOut<N> | undefined) ?? null;
  }

  private compute(name: EffectName, input: Effects[EffectName]['in'], sc: Scenario): unknown {
    switch (name) {
      case 'takeSnapshot':
        return { snapshotId: `snap-${this.nextId++}` };
      case 'collectBaseline':
        return {};
      case 'applyErrata':
        return { actionIds: [this.nextId++] };
      case 'awaitAction':
        return sc.applyFail
          ? { ok: false, message: 'Failed: package dependency problem (fake)' }
          : { ok: true, message: 'Completed' };
      case 'checkReboot':
        return { required: sc.reboot };
      case 'scheduleReboot':
        return { actionId: this.nextId++ };
      case 'awaitHost':
        if (sc.noReturn) return new Promise(() => undefined); // never resolves: the reboot timeout decides
        return {};
      case 'validate':
        return sc.validation === 'pass'
          ? {
              verdict: 'pass',
              reason: null,
              evidence: {
                checks: [{ check: 'cpu_delta_percent', baseline: 10, post: 11, delta: 1, limit: 20, ok: true }],
              },
            }
          : sc.validation === 'fail'
            ? {
                verdict: 'fail',
                reason: 'service nginx.service failed after patch (fake)',
                evidence: { checks: [{ check: 'failed_services', post: 1, limit: 0, ok: false }] },
              }
            : {
                verdict: 'inconclusive',
                reason: 'no evidence: Prometheus and Salt unreachable (fake)',
                evidence: null,
              };
      case 'rollbackTest':
        if (sc.rollbackFail) throw new Error('rollback failed: snapshot not found (fake)');
        return { type: (input as Effects['rollbackTest']['in']).rebootRequired ? 'system' : 'package' };
      case 'notify':
        return {};
      case 'promote':
        return { skipped: true };
      case 'planDeployment':
        return { deploymentId: input.entryId, waveCount: this.opts.waves, windowOpensAt: 0, windowClosesAt: null };
      case 'deployWave':
        return sc.halt && (input as Effects['deployWave']['in']).waveIndex === 0
          ? { outcome: 'halted', reason: '2 of 2 systems failed (threshold 1)' }
          : { outcome: 'ok', reason: null };
      case 'verifyDeployment':
        return sc.verifyFail
          ? { ok: false, reason: 'service checks failed on 1 system (fake)' }
          : { ok: true, reason: null };
      case 'rollbackProduction':
        return {};
    }
  }

  /** `PatchPorts` backed by this world (in-process). */
  ports(): PatchPorts {
    return portsFrom(
      (name, input, signal) => this.run(name, input, signal),
      (name, input) => this.reconcile(name, input),
    );
  }

  /** Serve this world over loopback HTTP (for daemons in child processes). */
  serve(port = 0): Promise<{ url: string; server: Server }> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const reply = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        const m = /^\/(run|reconcile)\/(\w+)$/.exec(req.url ?? '');
        if (req.method === 'GET' && req.url === '/stats')
          return reply(200, { executions: Object.fromEntries(this.executions), duplicates: this.duplicates() });
        if (req.method !== 'POST' || m === null || !EFFECT_NAMES.includes(m[2] as EffectName))
          return reply(404, { error: 'not found' });
        const input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as never;
        const name = m[2] as EffectName;
        const op = m[1] === 'run' ? this.run(name, input) : this.reconcile(name, input);
        op.then(
          (out) => reply(200, { ok: true, out }),
          (err: Error & { transient?: boolean }) =>
            reply(200, { ok: false, error: { message: err.message, transient: err.transient === true } }),
        );
      });
    });
    return new Promise((resolve) =>
      server.listen(port, '127.0.0.1', () =>
        resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }),
      ),
    );
  }
}

/** `PatchPorts` that talk to a fake world served by another process (`FakeWorld.serve`). */
export function fakeWorldHttpPorts(baseUrl: string): PatchPorts {
  const call = async (
    op: 'run' | 'reconcile',
    name: EffectName,
    input: unknown,
    signal?: AbortSignal,
  ): Promise<unknown> => {
    let res: Response;
    try {
      res = await fetch(`${baseUrl}/${op}/${name}`, {
        method: 'POST',
        body: JSON.stringify(input),
        headers: { 'content-type': 'application/json' },
        ...(signal ? { signal } : {}),
      });
    } catch (raw) {
      if (signal?.aborted) throw raw;
      throw new TransientError(`fake world unreachable: ${(raw as Error).message}`);
    }
    const body = (await res.json()) as { ok: boolean; out?: unknown; error?: { message: string; transient: boolean } };
    if (body.ok) return body.out ?? null;
    if (body.error?.transient) throw new TransientError(body.error.message);
    throw new Error(body.error?.message ?? 'fake world error');
  };
  return portsFrom(
    (name, input, signal) => call('run', name, input, signal),
    (name, input) => call('reconcile', name, input),
  );
}
