/**
 * The lab UYUNI's model: faults, the action record, the options and the errata date forms.
 * Never imported by production code (src/lab).
 */

export class Fault {
  readonly faultCode: number;
  readonly faultString: string;
  constructor(code: number, message: string) {
    this.faultCode = code;
    this.faultString = message;
  }
}

/** Drop null/undefined members, as UYUNI's SerializerHelper does. */
export function omitNulls<T>(v: T): T {
  if (Array.isArray(v)) return v.map(omitNulls) as T;
  if (v === null || typeof v !== 'object' || v instanceof Date) return v;
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== null && x !== undefined)
      .map(([k, x]) => [k, omitNulls(x)]),
  ) as T;
}

export interface LabUyuniOptions {
  user?: string;
  password?: string;
  latencyMs?: number;
  sessionTtlMs?: number;
  /** Action timing: Queued → Picked Up after `pickupMs`, → Completed/Failed `runMs` later. */
  pickupMs?: number;
  runMs?: number;
}

export interface LabAction {
  id: number;
  type: string;
  name: string;
  earliest: Date;
  createdAt: number;
  errataIds: number[];
  /** Per system: whether it fails (and why), was cancelled, hangs (never finishes) or is never picked up (`queued`). */
  systems: Map<number, { failMessage: string | null; cancelled: boolean; hang?: boolean; queued?: boolean }>;
  /** Run time of this action (a reboot runs as long as the host is away). */
  runMs?: number;
  /** Package ids of a package install action. */
  packageIds?: number[];
}

/** What the rest of the lab world learns about an action: per system, when it finished. */
export interface LabActionEvent {
  id: number;
  type: string;
  errataIds: number[];
  packageIds: number[];
  systemId: number;
  outcome: 'picked_up' | 'completed' | 'failed';
}

export interface LabClmEnvironment {
  id: number;
  label: string;
  name: string;
  version: number;
  status: string;
}

export type Handler = (...args: unknown[]) => unknown;

/**
 * How the lab sends errata dates (`ErrataOverview.date/issue_date/update_date`, `errata.getDetails`):
 * - `sql`: `2026-11-01 10:00:00` strings (newest UYUNI, the default);
 * - `datetime`: `dateTime.iso8601` without zone (`20261101T10:00:00`), as Spacewalk-lineage servers;
 * - `iso`: ISO 8601 strings in UTC (`2026-11-01T10:00:00Z`);
 * - `date`: date-only strings (`2026-11-01`);
 * - `short`: the locale short date of `errata.getDetails` (`11/1/26`);
 * - `legacy`: the old serializer: only `date`, a `dateTime.iso8601`, and no `issue_date`,
 *   `update_date`, `advisory_status`, `reboot`.
 */
export type LabDateForm = 'sql' | 'datetime' | 'iso' | 'date' | 'short' | 'legacy';
export const LAB_DATE_FORMS: readonly LabDateForm[] = ['sql', 'datetime', 'iso', 'date', 'short', 'legacy'];

/** A fleet date (`yyyy-MM-dd HH:mm:ss`) in the given form. */
export function labDate(wall: string, form: LabDateForm): string | Date {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(wall);
  if (!m) return wall;
  const [y, mo, d, h, mi, sec] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  switch (form) {
    case 'sql':
      return wall;
    // A local-time Date: the xmlrpc serializer writes its local wall clock without a zone, as UYUNI's Redstone does.
    case 'datetime':
    case 'legacy':
      return new Date(y, mo - 1, d, h, mi, sec);
    case 'iso':
      return `${wall.slice(0, 10)}T${wall.slice(11)}Z`;
    case 'date':
      return wall.slice(0, 10);
    case 'short':
      return `${mo}/${d}/${String(y % 100).padStart(2, '0')}`;
  }
}
