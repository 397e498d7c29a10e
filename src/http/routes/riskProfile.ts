/**
 * Risk profiles: `GET /risk-profile` (lowest scores first, filters), `GET /risk-profile/{errata_id}`
 * (with its breakdown), `POST /risk-profile/calculate` (recompute for given errata: packages from
 * UYUNI when configured and not yet cached, weights from `orchestrator_config.score_weights`).
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import { recalculateRiskProfiles } from '../../services/commands/riskProfiles.ts';
import type { UyuniClient } from '../../services/uyuni/client.ts';
import { riskProfileOf, riskProfilePage } from '../../services/views/riskProfileView.ts';
import type { ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readJson, readParam, readQuery } from '../validate.ts';
import { mountEndpoints, type Endpoint } from './endpoints.ts';

type RiskProfileDeps = BaseDeps & { uyuni: UyuniClient | undefined };

const pageQuery = z.object({
  risk_level: z.enum(['Low', 'Medium', 'High', 'Very High']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
const calculateBody = z.object({ errata_ids: z.array(z.string().trim().min(1).max(100)).min(1).max(1000) }).strict();

async function listProfiles(c: Context<ApiEnv>, deps: RiskProfileDeps) {
  const q = readQuery(c, pageQuery);
  const { items, total } = await riskProfilePage(deps.db, q);
  return c.json({ items: toApi(items), total, limit: q.limit, offset: q.offset });
}

async function getProfile(c: Context<ApiEnv>, deps: RiskProfileDeps) {
  const id = readParam(c, 'errata_id', 100);
  const profile = await riskProfileOf(deps.db, id);
  if (!profile)
    throw new AppError(404, 'not_found', `no risk profile for errata ${id} (queue it or POST /risk-profile/calculate)`);
  return c.json(toApi(profile));
}

async function calculateProfiles(c: Context<ApiEnv>, deps: RiskProfileDeps) {
  const body = await readJson(c, calculateBody);
  return c.json(await recalculateRiskProfiles(deps.db, [...new Set(body.errata_ids)], deps.uyuni));
}

export const RISK_PROFILE: Endpoint<RiskProfileDeps>[] = [
  ['GET', '/risk-profile', 'viewer', listProfiles],
  ['GET', '/risk-profile/:errata_id', 'viewer', getProfile],
  ['POST', '/risk-profile/calculate', 'operator', calculateProfiles],
];

/**
 * The risk-profile endpoints.
 * @example
 * createApp(deps, [riskProfileRoutes({ ...deps, uyuni })]);
 */
export function riskProfileRoutes(deps: RiskProfileDeps) {
  return (api: Hono<ApiEnv>) => mountEndpoints(api, deps, RISK_PROFILE);
}
