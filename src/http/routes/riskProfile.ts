/**
 * Risk profiles: `GET /risk-profile` (lowest scores first, filters), `GET /risk-profile/{errata_id}`
 * (with its breakdown), `POST /risk-profile/calculate` (recompute for given errata: packages from
 * UYUNI when configured and not yet cached, weights from `orchestrator_config.score_weights`).
 */
import type { Hono } from 'hono';
import { sql } from 'slonik';
import { z } from 'zod';
import { AppError } from '../../errors.ts';
import type { BaseDeps } from '../../interfaces.ts';
import { profileErrata } from '../../services/riskProfile.ts';
import { riskLevel } from '../../services/score.ts';
import type { UyuniClient } from '../../services/uyuni/client.ts';
import { requireRole } from '../auth.ts';
import type { ApiEnv } from '../context.ts';
import { toApi } from '../serialize.ts';
import { readJson, readQuery } from '../validate.ts';

const profileRow = z.object({}).passthrough();

export function riskProfileRoutes(deps: BaseDeps & { uyuni: UyuniClient | undefined }) {
  return (api: Hono<ApiEnv>) => {
    api.get('/risk-profile', requireRole('viewer'), async (c) => {
      const q = readQuery(c, z.object({
        risk_level: z.enum(['Low', 'Medium', 'High', 'Very High']).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        offset: z.coerce.number().int().min(0).default(0),
      }));
      const band = { Low: [80, 100], Medium: [60, 79], High: [40, 59], 'Very High': [0, 39] }[q.risk_level ?? 'Low'];
      const where = q.risk_level ? sql.fragment`success_score BETWEEN ${band![0]!} AND ${band![1]!}` : sql.fragment`true`;
      const items = await deps.db.any(sql.type(profileRow)`
        SELECT * FROM patch_risk_profile WHERE ${where} ORDER BY success_score, errata_id LIMIT ${q.limit} OFFSET ${q.offset}`);
      const total = await deps.db.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM patch_risk_profile WHERE ${where}`);
      return c.json({ items: toApi(items.map((r) => ({ ...r, risk_level: riskLevel(r.success_score as number) }))), total, limit: q.limit, offset: q.offset });
    });

    api.get('/risk-profile/:errata_id', requireRole('viewer'), async (c) => {
      const id = c.req.param('errata_id');
      if (id.length === 0 || id.length > 100) throw new AppError(400, 'invalid_id', 'errata_id must be 1–100 characters');
      const row = await deps.db.maybeOne(sql.type(profileRow)`SELECT * FROM patch_risk_profile WHERE errata_id = ${id}`);
      if (!row) throw new AppError(404, 'not_found', `no risk profile for errata ${id} (queue it or POST /risk-profile/calculate)`);
      return c.json(toApi({ ...row, risk_level: riskLevel(row.success_score as number) }));
    });

    api.post('/risk-profile/calculate', requireRole('operator'), async (c) => {
      const body = await readJson(c, z.object({ errata_ids: z.array(z.string().trim().min(1).max(100)).min(1).max(1000) }).strict());
      const ids = [...new Set(body.errata_ids)];
      const known = new Set(await deps.db.anyFirst(sql.type(z.object({ id: z.string() }))`SELECT errata_id AS id FROM errata_cache WHERE errata_id = ANY(${sql.array(ids, 'text')})`));
      const unknown = ids.filter((x) => !known.has(x));
      if (unknown.length === ids.length) throw new AppError(404, 'unknown_errata', `none of the errata is in the errata cache: ${unknown.slice(0, 5).join(', ')}`);
      const profiles = await profileErrata(deps.db, [...known], deps.uyuni);
      return c.json({
        calculated: [...profiles.entries()].map(([errata_id, b]) => ({ errata_id, ...b })),
        without_packages: [...known].filter((x) => !profiles.has(x)),
        unknown,
      });
    });
  };
}
