/**
 * Reports (design §8): a summary of the pipeline and a compliance view — per OS and severity, how
 * many Security Advisories the fleet needs, how many are deployed, in progress, and overdue
 * (first seen more than `days` ago and not deployed).
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { BaseDeps } from '../../interfaces.ts';
import { complianceReport, pipelineSummary } from '../../services/views/reportView.ts';
import type { ApiEnv } from '../context.ts';
import { readQuery } from '../validate.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

const period = z.object({ days: z.coerce.number().int().min(1).max(3650).default(30) });

async function getSummary(c: Context<ApiEnv>, deps: BaseDeps) {
  const { days } = readQuery(c, period);
  return c.json(await pipelineSummary(deps.db, days));
}

async function getCompliance(c: Context<ApiEnv>, deps: BaseDeps) {
  const { days } = readQuery(c, period);
  return c.json(await complianceReport(deps.db, days));
}

export const REPORTS: Endpoint<BaseDeps>[] = [
  ['GET', '/reports/summary', 'viewer', getSummary],
  ['GET', '/reports/compliance', 'viewer', getCompliance],
];

/**
 * The report endpoints.
 * @example
 * createApp(deps, [reportRoutes(deps)]);
 */
export function reportRoutes(deps: BaseDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, REPORTS);
}
