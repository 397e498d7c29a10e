import { describe, expect, it } from 'vitest';
import { normalizeUyuniDate, uyuniDateText, uyuniInstant } from './dates.ts';

describe('normalizeUyuniDate: every documented UYUNI date form to the server wall clock', () => {
  it.each([
    ['yyyy-MM-dd HH:mm:ss (newest UYUNI)', '2024-01-15 10:00:00', '2024-01-15 10:00:00'],
    ['Java Timestamp.toString()', '2024-01-15 10:00:00.0', '2024-01-15 10:00:00'],
    ['ISO 8601 without zone', '2024-01-15T10:00:00', '2024-01-15 10:00:00'],
    ['ISO 8601 with milliseconds and Z', '2024-01-15T10:00:00.123Z', '2024-01-15 10:00:00'],
    ['ISO 8601 with an offset (to UTC)', '2024-01-15T10:00:00+02:00', '2024-01-15 08:00:00'],
    ['ISO 8601 with a negative offset across midnight', '2024-01-15T22:30:00-0500', '2024-01-16 03:30:00'],
    ['date only', '2024-01-15', '2024-01-15 00:00:00'],
    ['XML-RPC basic form as a string', '20240115T10:00:00', '2024-01-15 10:00:00'],
    ['US short date M/d/yy', '1/15/24', '2024-01-15 00:00:00'],
    ['US short date, single digits', '1/5/24', '2024-01-05 00:00:00'],
    ['US short date with a 4-digit year', '12/31/2023', '2023-12-31 00:00:00'],
    ['US short date and time', '1/15/24, 1:45 PM', '2024-01-15 13:45:00'],
    ['European short date', '15.01.24', '2024-01-15 00:00:00'],
    ['Java Date.toString()', 'Mon Jan 15 10:00:00 CET 2024', '2024-01-15 10:00:00'],
  ])('%s: %s', (_name, input, out) => {
    expect(normalizeUyuniDate(input)).toBe(out);
  });

  it('a decoded dateTime.iso8601 (a Date in our local time) keeps its wall clock', () => {
    expect(normalizeUyuniDate(new Date(2024, 0, 15, 10, 0, 0))).toBe('2024-01-15 10:00:00');
  });

  it('empty values are null; unknown forms are kept as sent; impossible dates are not invented', () => {
    expect(normalizeUyuniDate('')).toBeNull();
    expect(normalizeUyuniDate(undefined)).toBeNull();
    expect(normalizeUyuniDate(new Date(Number.NaN))).toBeNull();
    expect(normalizeUyuniDate(' sometime in 2024 ')).toBe('sometime in 2024');
    expect(normalizeUyuniDate('2/30/24')).toBe('2/30/24');
    expect(normalizeUyuniDate('2024-13-01')).toBe('2024-13-01');
  });

  it('two-digit years pivot like Java (80 years back, 20 ahead)', () => {
    const y = new Date().getFullYear();
    expect(normalizeUyuniDate(`1/1/${String((y + 19) % 100).padStart(2, '0')}`)!.slice(0, 4)).toBe(String(y + 19));
    expect(normalizeUyuniDate(`1/1/${String((y + 21) % 100).padStart(2, '0')}`)!.slice(0, 4)).toBe(
      String(y + 21 - 100),
    );
  });

  it('the zod field accepts a Date and a string; an instant reads the wall clock as local time', () => {
    expect(uyuniDateText.parse(new Date(2026, 10, 1, 10))).toBe('2026-11-01 10:00:00');
    expect(uyuniDateText.parse('11/1/26')).toBe('2026-11-01 00:00:00');
    expect(uyuniInstant('2026-11-20 08:00:00')!.getTime()).toBe(new Date(2026, 10, 20, 8).getTime());
    expect(uyuniInstant('not a date')).toBeNull();
  });
});
