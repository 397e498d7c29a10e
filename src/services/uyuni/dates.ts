/**
 * UYUNI date values, in every form a real server sends (reference `integrations-api.md` §1.0 and
 * the addendum "ErrataOverview dates differ between server generations"):
 *
 * | form | example | who sends it |
 * |---|---|---|
 * | `dateTime.iso8601` (no zone, server-local) | `<dateTime.iso8601>20240115T10:00:00</…>` | Spacewalk-lineage serializers (`date`), every `$date` field; the `xmlrpc` package decodes it to a JS `Date` in *our* local time, i.e. the same wall clock |
 * | `yyyy-MM-dd HH:mm:ss` | `2024-01-15 10:00:00` (also `….0`) | newest UYUNI (`get*DateIsoFormat()`) |
 * | ISO 8601 | `2024-01-15T10:00:00`, `…Z`, `…+02:00` | HTTP JSON API, some builds |
 * | date only | `2024-01-15` | |
 * | locale short date | `1/15/24`, `1/5/2024` (US `M/d/yy`); `15.01.24` (`d.M.yy`) | `errata.getDetails` |
 * | Java `Date.toString()` | `Mon Jan 15 10:00:00 CET 2024` | `last_modified_date` |
 *
 * Everything is brought to one text form, the server's wall clock `yyyy-MM-dd HH:mm:ss` (what the
 * newest UYUNI sends, and what the errata cache stores and compares as the errata version), so
 * that the same instant in two forms is the same version. A value with an explicit zone (ISO `Z` or
 * an offset) is converted to UTC; values without a zone are left as the server's local time, as
 * UYUNI means them. A date without a time gets `00:00:00`. A string in no known form is kept as
 * sent (trimmed): still a stable version, never a failed sync.
 */
import { z } from 'zod';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const wall = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) =>
  `${pad(y, 4)}-${pad(mo)}-${pad(d)} ${pad(h)}:${pad(mi)}:${pad(s)}`;

function valid(y: number, mo: number, d: number, h: number, mi: number, s: number): boolean {
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 60) return false;
  return d <= new Date(Date.UTC(y, mo, 0)).getUTCDate();
}

/** Two-digit years as Java's SimpleDateFormat reads them: within 80 years before and 20 after now. */
function fullYear(yy: number, now = new Date()): number {
  const pivot = now.getFullYear() + 20;
  const century = Math.floor(pivot / 100) * 100;
  const y = century + yy;
  return y > pivot ? y - 100 : y;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * The server wall-clock text (`yyyy-MM-dd HH:mm:ss`) of a UYUNI date value, or null for an empty
 * one. Unknown string forms are returned trimmed.
 * @example
 * normalizeUyuniDate('1/15/24') // '2024-01-15 00:00:00'
 * normalizeUyuniDate(new Date(2024, 0, 15, 10)) // '2024-01-15 10:00:00' (a decoded dateTime.iso8601)
 */
export function normalizeUyuniDate(v: Date | string | null | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) return null;
    // The xmlrpc package decoded a zone-less dateTime.iso8601 as our local time: local parts give back the server's wall clock.
    return wall(v.getFullYear(), v.getMonth() + 1, v.getDate(), v.getHours(), v.getMinutes(), v.getSeconds());
  }
  const s = v.trim();
  if (s === '') return null;
  let m: RegExpExecArray | null;
  // ISO 8601 / SQL-ish: 2024-01-15, 2024-01-15 10:00:00(.0), 2024-01-15T10:00(:00)(.123)(Z|±hh(:mm)),
  // and the XML-RPC basic form 20240115T10:00:00 sent as a string.
  m =
    /^(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(
      s,
    );
  if (m && (s.includes('-') || s.includes('T') || s.includes('t'))) {
    const [y, mo, d, h, mi, sec] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    if (!valid(y, mo, d, h, mi, sec)) return s;
    const zone = m[7];
    if (zone === undefined) return wall(y, mo, d, h, mi, sec);
    let offsetMin = 0;
    if (zone.toUpperCase() !== 'Z') {
      const z2 = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
      offsetMin = (z2[1] === '-' ? -1 : 1) * (Number(z2[2]) * 60 + Number(z2[3] ?? '0'));
    }
    const t = new Date(Date.UTC(y, mo - 1, d, h, mi, sec) - offsetMin * 60_000);
    return wall(
      t.getUTCFullYear(),
      t.getUTCMonth() + 1,
      t.getUTCDate(),
      t.getUTCHours(),
      t.getUTCMinutes(),
      t.getUTCSeconds(),
    );
  }
  // US short date M/d/yy or M/d/yyyy, optionally with a time (h:mm[:ss] [AM|PM]).
  m = /^(\d{1,2})\/(\d{1,2})\/(\d{2}|\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AP]M)?)?$/i.exec(s);
  if (m) {
    const y = m[3]!.length === 2 ? fullYear(Number(m[3])) : Number(m[3]);
    let h = Number(m[4] ?? '0');
    if (m[7]) h = (h % 12) + (m[7].toUpperCase() === 'PM' ? 12 : 0);
    const [mo, d, mi, sec] = [Number(m[1]), Number(m[2]), Number(m[5] ?? '0'), Number(m[6] ?? '0')];
    return valid(y, mo, d, h, mi, sec) ? wall(y, mo, d, h, mi, sec) : s;
  }
  // European short date d.M.yy or d.M.yyyy.
  m = /^(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})$/.exec(s);
  if (m) {
    const y = m[3]!.length === 2 ? fullYear(Number(m[3])) : Number(m[3]);
    return valid(y, Number(m[2]), Number(m[1]), 0, 0, 0) ? wall(y, Number(m[2]), Number(m[1])) : s;
  }
  // Java Date.toString(): EEE MMM dd HH:mm:ss zzz yyyy (the zone is a server-local abbreviation: kept as wall clock).
  m = /^[A-Za-z]{3} ([A-Za-z]{3}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2}) [A-Za-z0-9+:-]+ (\d{4})$/.exec(s);
  if (m) {
    const mo = MONTHS.indexOf(m[1]!.toLowerCase()) + 1;
    const [d, h, mi, sec, y] = [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
    return mo > 0 && valid(y, mo, d, h, mi, sec) ? wall(y, mo, d, h, mi, sec) : s;
  }
  return s;
}

/** The instant of a UYUNI date value (server-local wall clock read as local time, as the xmlrpc package does), or null. */
export function uyuniInstant(v: Date | string | null | undefined): Date | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v;
  const w = normalizeUyuniDate(v);
  const m = w === null ? null : /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(w);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s);
}

/** A date field of a reply (errata dates): any documented form in, the wall-clock text out. */
export const uyuniDateText = z.union([z.date(), z.string()]).transform((v) => normalizeUyuniDate(v));
/** A timestamp field of a reply (check-in, action times): any documented form in, a `Date` (or null) out. */
export const uyuniDateInstant = z.union([z.date(), z.string()]).transform((v) => uyuniInstant(v));
