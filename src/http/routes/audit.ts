/**
 * `GET /audit` (admin): the audit log, newest first by default, filtered by actor, action,
 * outcome, target and time range, paged by `seq` (keyset: `next_cursor` is the `cursor` of the
 * next page). With `Accept: application/x-ndjson` or `text/csv` (or `?format=jsonl|csv`) every
 * matching row is streamed, page by page, as JSON Lines or CSV. Each row carries its `seq`,
 * `prev_hash` and `hash`, so an export can be checked against `spm-orchestrator audit verify`.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { BaseDeps } from '../../interfaces.ts';
import { listAudit, type AuditFilter, type AuditRow } from '../../persistence/sql/audit.ts';
import type { ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readQuery } from '../validate.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

const EXPORT_PAGE = 1000;
const text = (max: number) => z.string().min(1).max(max).optional();
const instant = z.iso
  .datetime({ offset: true })
  .transform((s) => Date.parse(s))
  .optional();
const auditQuery = z
  .object({
    actor: text(200),
    action: text(200),
    outcome: z.enum(['allowed', 'denied', 'failed', 'succeeded']).optional(),
    /** `type:id` (e.g. `queue_entry:12`) or a bare type (`deployment`). */
    target: text(300),
    since: instant,
    until: instant,
    order: z.enum(['asc', 'desc']).default('desc'),
    cursor: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    format: z.enum(['json', 'jsonl', 'csv']).optional(),
  })
  .strict();

/** The API form of a row (times as ISO-8601). */
const apiRow = (r: AuditRow) => toApi(r);

const CSV_COLUMNS = [
  'seq',
  'id',
  'at',
  'actor',
  'token_id',
  'action',
  'method',
  'path',
  'target_type',
  'target_id',
  'outcome',
  'status_code',
  'ip_address',
  'user_agent',
  'request_id',
  'details',
  'prev_hash',
  'hash',
] as const;

/**
 * One CSV field (RFC 4180 quoting). A cell a spreadsheet would run as a formula (`=`, `+`, `-`,
 * `@`, tab, CR first) is prefixed with `'`: the export is for reading, the chain is checked with
 * `audit verify` or the JSONL export.
 * @example csvField('=1+1') // "'=1+1"
 */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function formatOf(c: Context<ApiEnv>, asked: 'json' | 'jsonl' | 'csv' | undefined): 'json' | 'jsonl' | 'csv' {
  if (asked) return asked;
  const accept = c.req.header('accept') ?? '';
  if (/application\/(x-)?ndjson|application\/jsonl/i.test(accept)) return 'jsonl';
  if (/text\/csv/i.test(accept)) return 'csv';
  return 'json';
}

async function getAudit(c: Context<ApiEnv>, deps: BaseDeps) {
  const q = readQuery(c, auditQuery);
  const [targetType, ...rest] = q.target?.split(':') ?? [];
  const filter: AuditFilter = {
    actor: q.actor,
    action: q.action,
    outcome: q.outcome,
    since: q.since,
    until: q.until,
    targetType: targetType || undefined,
    targetId: rest.length > 0 ? rest.join(':') : undefined,
  };
  const format = formatOf(c, q.format);
  if (format === 'json') {
    const limit = q.limit ?? 100;
    const items = await listAudit(deps.db, filter, { order: q.order, cursor: q.cursor ?? null, limit });
    const last = items.at(-1);
    return c.json({ items: items.map(apiRow), next_cursor: items.length === limit && last ? last.seq : null });
  }
  // Export: every matching row (or `limit`), read a page at a time so memory stays flat.
  const max = q.limit ?? Number.POSITIVE_INFINITY;
  const enc = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async start(ctl) {
      try {
        if (format === 'csv') ctl.enqueue(enc.encode(`${CSV_COLUMNS.join(',')}\r\n`));
        let cursor = q.cursor ?? null;
        let sent = 0;
        while (sent < max) {
          const page = await listAudit(deps.db, filter, {
            order: q.order,
            cursor,
            limit: Math.min(EXPORT_PAGE, max - sent),
          });
          for (const r of page) {
            const row = apiRow(r) as Record<string, unknown>;
            ctl.enqueue(
              enc.encode(
                format === 'csv'
                  ? `${CSV_COLUMNS.map((k) => csvField(row[k])).join(',')}\r\n`
                  : `${JSON.stringify(row)}\n`,
              ),
            );
          }
          sent += page.length;
          if (page.length < EXPORT_PAGE) break;
          cursor = page.at(-1)!.seq;
        }
        ctl.close();
      } catch (raw) {
        deps.logger.error({ err: (raw as Error).message }, 'audit export failed part-way');
        ctl.error(raw);
      }
    },
  });
  const type = format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson';
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return c.body(stream, 200, {
    'content-type': type,
    'content-disposition': `attachment; filename="audit-${stamp}.${format}"`,
    'cache-control': 'no-store',
  });
}

export const AUDIT: Endpoint<BaseDeps>[] = [['GET', '/audit', 'admin', getAudit]];

/**
 * The audit-log endpoint (mounted by `createApp`).
 * @example createApp(deps) // GET /api/v1/audit
 */
export function auditRoutes(deps: BaseDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, AUDIT);
}
