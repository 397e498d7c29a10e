import { describe, expect, it } from 'vitest';
import { judge, type Evidence } from './judge.ts';

const T = { cpu_delta_percent: 20, memory_delta_percent: 15, max_failed_services: 0 };
const ev = (over: Partial<Evidence> = {}): Evidence => ({
  source: { metrics: 'prometheus', services: 'prometheus' },
  cpuPercent: 10,
  memoryPercent: 40,
  services: { 'ssh.service': true, 'nginx.service': true },
  takenAt: '2026-11-23T00:00:00Z',
  notes: [],
  ...over,
});

describe('judge', () => {
  it('passes when every delta is within its limit, keeping each check as evidence', () => {
    const v = judge(ev(), ev({ cpuPercent: 29.5, memoryPercent: 54 }), T);
    expect(v.verdict).toBe('pass');
    expect(v.checks).toEqual([
      { check: 'cpu_delta_percent', baseline: 10, post: 29.5, delta: 19.5, limit: 20, ok: true },
      { check: 'memory_delta_percent', baseline: 40, post: 54, delta: 14, limit: 15, ok: true },
      { check: 'failed_services', baseline: 0, post: 0, delta: 0, limit: 0, ok: true },
    ]);
  });

  it('fails on a CPU or memory delta over the limit', () => {
    expect(judge(ev(), ev({ cpuPercent: 31 }), T)).toMatchObject({
      verdict: 'fail',
      reason: 'cpu_delta 21 points > 20',
    });
    expect(judge(ev(), ev({ memoryPercent: 56 }), T)).toMatchObject({
      verdict: 'fail',
      reason: 'memory_delta 16 points > 15',
    });
  });

  it('fails when a service active at baseline is not active after the patch', () => {
    const v = judge(ev(), ev({ services: { 'ssh.service': true, 'nginx.service': false } }), T);
    expect(v).toMatchObject({ verdict: 'fail', failedServices: ['nginx.service'] });
    expect(v.reason).toContain('nginx.service');
  });

  it('a service already down at baseline is not blamed on the patch', () => {
    expect(
      judge(
        ev({ services: { 'ssh.service': true, 'nginx.service': false } }),
        ev({ services: { 'ssh.service': true, 'nginx.service': false } }),
        T,
      ).verdict,
    ).toBe('pass');
  });

  it('Prometheus down: Salt service checks alone can pass, metrics marked unavailable', () => {
    const salt = ev({ source: { metrics: null, services: 'salt' }, cpuPercent: null, memoryPercent: null });
    const v = judge(salt, salt, T);
    expect(v.verdict).toBe('pass');
    expect(v.checks.filter((c) => c.ok === null).map((c) => c.check)).toEqual([
      'cpu_delta_percent',
      'memory_delta_percent',
    ]);
  });

  it('never passes without evidence: missing side or unknown services → inconclusive', () => {
    expect(judge(null, ev(), T).verdict).toBe('inconclusive');
    expect(judge(ev(), null, T).verdict).toBe('inconclusive');
    const blind = ev({ source: { metrics: 'prometheus', services: null }, services: { 'ssh.service': null } });
    expect(judge(blind, blind, T).verdict).toBe('inconclusive');
  });

  it('a metric failure wins over unknown services', () => {
    const blind = ev({ services: {} });
    expect(judge(blind, ev({ services: {}, cpuPercent: 90 }), T).verdict).toBe('fail');
  });
});
