import { describe, expect, it } from 'vitest';
import { maintenanceWindowsSchema, nextWindow, openWindow, windowsFor, zonedTime } from './windows.ts';

const sat22 = { days: ['sat' as const], start: '22:00', duration_minutes: 240, timezone: 'Europe/Rome' };

describe('maintenance windows', () => {
  it('converts wall-clock times with daylight saving', () => {
    expect(new Date(zonedTime(2026, 6, 4, 22, 0, 'Europe/Rome')).toISOString()).toBe('2026-07-04T20:00:00.000Z'); // CEST
    expect(new Date(zonedTime(2026, 11, 5, 22, 0, 'Europe/Rome')).toISOString()).toBe('2026-12-05T21:00:00.000Z'); // CET
  });

  it('finds the next window, or the one open now', () => {
    const tue = Date.parse('2026-11-24T10:00:00Z');
    expect(nextWindow([sat22], tue)).toEqual({
      opensAt: Date.parse('2026-11-28T21:00:00Z'),
      closesAt: Date.parse('2026-11-29T01:00:00Z'),
    });
    const inside = Date.parse('2026-11-28T23:00:00Z');
    expect(openWindow([sat22], inside)).toEqual({ opensAt: inside, closesAt: Date.parse('2026-11-29T01:00:00Z') });
    // Window that crosses midnight is still open on Sunday 00:30 local.
    expect(openWindow([sat22], Date.parse('2026-11-28T23:30:00Z'))).not.toBeNull();
  });

  it('too little time left means the next window', () => {
    const late = Date.parse('2026-11-29T00:45:00Z'); // 15 min left
    expect(openWindow([sat22], late, 30 * 60_000)).toBeNull();
    expect(nextWindow([sat22], late, 30 * 60_000)?.opensAt).toBe(Date.parse('2026-12-05T21:00:00Z'));
  });

  it('per-group windows override the default; bad config is named', () => {
    const cfg = maintenanceWindowsSchema.parse({
      default: [sat22],
      'prod-db': [{ days: ['sun'], start: '03:00', duration_minutes: 60 }],
    });
    expect(windowsFor(cfg, 'prod-db')[0]!.timezone).toBe('UTC');
    expect(windowsFor(cfg, 'prod-web')).toEqual([sat22]);
    const bad = maintenanceWindowsSchema.safeParse({
      default: [{ days: ['someday'], start: '25:00', duration_minutes: 0, timezone: 'Mars/Base' }],
    });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => i.path.join('.')).sort()).toEqual([
      'default.0.days.0',
      'default.0.duration_minutes',
      'default.0.start',
      'default.0.timezone',
    ]);
  });
});
