/**
 * Maintenance windows (pure): weekly windows with a time zone, configured per production group in
 * `orchestrator_config.maintenance_windows` (`default` applies to groups without their own):
 *
 *   { "default": [{ "days": ["sat"], "start": "22:00", "duration_minutes": 240, "timezone": "Europe/Rome" }] }
 *
 * Wall-clock times are converted with the IANA time zone (daylight saving included), so "22:00
 * Europe/Rome" is 22:00 in Rome in summer and in winter.
 */
import { z } from 'zod';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
/** An IANA time zone name this runtime knows (e.g. `Europe/Rome`). */
export const ianaTimeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'unknown IANA time zone');

const windowSchema = z.object({
  days: z.array(z.enum(DAYS)).min(1),
  start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
  duration_minutes: z
    .number()
    .int()
    .min(1)
    .max(7 * 1440),
  timezone: ianaTimeZone.default('UTC'),
});
export const maintenanceWindowsSchema = z.record(z.string(), z.array(windowSchema));
export type MaintenanceWindows = z.infer<typeof maintenanceWindowsSchema>;
export type WeeklyWindow = z.infer<typeof windowSchema>;

/** Offset (ms) of a time zone from UTC at an instant. */
function tzOffsetMs(at: number, timeZone: string): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
      .formatToParts(new Date(at))
      .filter((p) => p.type !== 'literal')
      .map((p) => [p.type, Number(p.value)]),
  ) as Record<string, number>;
  const asUtc = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
  return asUtc - Math.floor(at / 1000) * 1000;
}

/** The instant of a wall-clock time in a time zone. */
export function zonedTime(y: number, m: number, d: number, hh: number, mm: number, timeZone: string): number {
  const guess = Date.UTC(y, m, d, hh, mm);
  let t = guess - tzOffsetMs(guess, timeZone);
  t = guess - tzOffsetMs(t, timeZone); // second pass across a DST change
  return t;
}

/** Local wall-clock time of an instant in a time zone (m is 0-based; dow 0 = Sunday). */
export function localTime(
  at: number,
  timeZone: string,
): { y: number; m: number; d: number; dow: number; hh: number; mm: number } {
  const local = new Date(at + tzOffsetMs(at, timeZone));
  return {
    y: local.getUTCFullYear(),
    m: local.getUTCMonth(),
    d: local.getUTCDate(),
    dow: local.getUTCDay(),
    hh: local.getUTCHours(),
    mm: local.getUTCMinutes(),
  };
}

export interface OpenWindow {
  opensAt: number;
  closesAt: number;
}

/** Every occurrence of the windows overlapping [from − 8 days, from + 15 days], sorted. */
function occurrences(windows: WeeklyWindow[], from: number): OpenWindow[] {
  const out: OpenWindow[] = [];
  for (const w of windows) {
    const [hh, mm] = w.start.split(':').map(Number) as [number, number];
    for (let k = -8; k <= 15; k++) {
      const { y, m, d, dow } = localTime(from + k * 86_400_000, w.timezone);
      if (!w.days.includes(DAYS[dow]!)) continue;
      const opensAt = zonedTime(y, m, d, hh, mm, w.timezone);
      out.push({ opensAt, closesAt: opensAt + w.duration_minutes * 60_000 });
    }
  }
  out.sort((a, b) => a.opensAt - b.opensAt);
  return out;
}

/** The windows of a group (its own, else `default`). */
export function windowsFor(config: MaintenanceWindows, group: string | null): WeeklyWindow[] {
  return (group !== null ? config[group] : undefined) ?? config.default ?? [];
}

/**
 * The window to deploy in: the one open now when at least `minRemainingMs` of it is left, else the
 * next one. Null when no window is configured.
 */
export function nextWindow(windows: WeeklyWindow[], now: number, minRemainingMs = 0): OpenWindow | null {
  for (const w of occurrences(windows, now)) {
    if (w.closesAt - minRemainingMs <= now) continue;
    if (w.opensAt <= now) return { opensAt: now, closesAt: w.closesAt };
    return w;
  }
  return null;
}

/** The window open at `now` with at least `minRemainingMs` left, or null. */
export function openWindow(windows: WeeklyWindow[], now: number, minRemainingMs = 0): OpenWindow | null {
  const w = nextWindow(windows, now, minRemainingMs);
  return w !== null && w.opensAt <= now ? w : null;
}
