/**
 * Every documented form of the UYUNI errata dates (reference addendum: dateTime.iso8601 without a
 * zone from Spacewalk-lineage servers, `yyyy-MM-dd HH:mm:ss`, ISO 8601, date-only and the locale
 * short date), one sync through the lab UYUNI per form (its `dateForm` knob): the sync completes
 * and the cache stores the right date, in one text form.
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { generateFleet, SEED_SCALE } from '../src/lab/fleet.ts';
import { LAB_DATE_FORMS, LabUyuni, type LabDateForm } from '../src/lab/uyuni.ts';
import { UyuniSync } from '../src/services/uyuni/sync.ts';
import { UyuniClient } from '../src/services/uyuni/client.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

const lab = new LabUyuni(generateFleet(SEED_SCALE));
let url: string;
const dbs: Awaited<ReturnType<typeof createTestDatabase>>[] = [];
beforeAll(async () => {
  url = await lab.serve();
});
afterAll(async () => {
  await lab.close();
  for (const d of dbs) await d.drop();
});

const client = () =>
  new UyuniClient({ url, user: 'admin', password: 'admin', verifySsl: true, timeoutMs: 5000, syncWorkers: 4 });
const row = z.object({
  issue_date: z.string().nullable(),
  update_date: z.string().nullable(),
  errata_version: z.string().nullable(),
  advisory_status: z.string().nullable(),
});

// An errata whose time of day is not midnight, so that a date-only form shows.
const sample = lab.fleet.errata.find((e) => !e.issueDate.endsWith(' 00:00:00'))!;
const wall = sample.issueDate; // yyyy-MM-dd HH:mm:ss
const day = `${wall.slice(0, 10)} 00:00:00`;
const expected: Record<LabDateForm, z.infer<typeof row>> = {
  sql: { issue_date: wall, update_date: wall, errata_version: wall, advisory_status: 'stable' },
  datetime: { issue_date: wall, update_date: wall, errata_version: wall, advisory_status: 'stable' },
  iso: { issue_date: wall, update_date: wall, errata_version: wall, advisory_status: 'stable' },
  date: { issue_date: day, update_date: day, errata_version: day, advisory_status: 'stable' },
  short: { issue_date: day, update_date: day, errata_version: day, advisory_status: 'stable' },
  // The old serializer: only `date` (the update date), no issue date, no status.
  legacy: { issue_date: null, update_date: wall, errata_version: wall, advisory_status: null },
};

describe('UYUNI errata dates in every form', () => {
  it.each(LAB_DATE_FORMS.map((f) => [f]))('%s: the sync completes and stores the right dates', async (form) => {
    const t = await createTestDatabase();
    dbs.push(t);
    lab.dateForm = form;
    const r = await new UyuniSync({ db: t.db, logger: silentLogger, uyuni: client(), prefixes: ['test-'] }).run('api');
    expect(r, r.error ?? '').toMatchObject({ status: 'completed', error: null, errata: { total: 634, new: 634 } });
    const got = await t.db.one(
      sql.type(
        row,
      )`SELECT issue_date, update_date, errata_version, advisory_status FROM errata_cache WHERE errata_id = ${sample.advisoryName}`,
    );
    expect(got).toEqual(expected[form]);
  });

  it('the same instants in another form are the same errata versions (no spurious re-queue)', async () => {
    const t = await createTestDatabase();
    dbs.push(t);
    const sync = new UyuniSync({ db: t.db, logger: silentLogger, uyuni: client(), prefixes: ['test-'] });
    lab.dateForm = 'sql';
    expect((await sync.run('api')).errata.new).toBe(634);
    for (const form of ['datetime', 'iso'] as const) {
      lab.dateForm = form;
      const r = await sync.run('api');
      expect(r.errata, form).toEqual({ total: 634, new: 0, updated: 0, unchanged: 634 });
      expect(r.versionChanged).toEqual([]);
    }
  });

  it('errata.getDetails short dates (1/5/24 style) are read as dates', async () => {
    lab.dateForm = 'short';
    const d = await client().withSession((s) => s.getDetails(sample.advisoryName));
    expect(d.issue_date).toBe(day);
    lab.dateForm = 'datetime';
    expect((await client().withSession((s) => s.getDetails(sample.advisoryName))).update_date).toBe(wall);
    lab.dateForm = 'sql';
  });
});
