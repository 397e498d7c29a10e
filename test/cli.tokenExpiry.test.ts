/** `token create` gives a token an expiry unless told not to (90 days; `--expires-days 0` / `--no-expiry`: never). */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestDatabase } from './helpers/db.ts';

const run = promisify(execFile);
let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

const cli = (args: string[]) =>
  run(process.execPath, ['src/main.ts', 'token', ...args], { env: { ...process.env, DATABASE_URL: t.url } });
const expiry = (name: string) =>
  t.db.oneFirst(
    sql.type(z.object({ e: z.number().nullable() }))`SELECT expires_at AS e FROM api_tokens WHERE name = ${name}`,
  );
const DAY = 86_400_000;

describe('token create: expiry by default', () => {
  it('without an option the token expires in 90 days, and says so', async () => {
    const { stdout } = await cli(['create', '--name', 'default-exp', '--role', 'viewer']);
    expect(stdout).toMatch(/expires \d{4}-\d\d-\d\d\)/);
    const e = await expiry('default-exp');
    expect(e).toBeGreaterThan(Date.now() + 89 * DAY);
    expect(e).toBeLessThan(Date.now() + 91 * DAY);
  });

  it('--expires-days D, and never only when asked: --expires-days 0 or --no-expiry', async () => {
    await cli(['create', '--name', 'seven', '--role', 'viewer', '--expires-days', '7']);
    expect(await expiry('seven')).toBeLessThan(Date.now() + 8 * DAY);
    const zero = await cli(['create', '--name', 'zero', '--role', 'viewer', '--expires-days', '0']);
    expect(zero.stdout).toContain('never expires');
    expect(await expiry('zero')).toBeNull();
    await cli(['create', '--name', 'never', '--role', 'viewer', '--no-expiry']);
    expect(await expiry('never')).toBeNull();
    await expect(
      cli(['create', '--name', 'both', '--role', 'viewer', '--no-expiry', '--expires-days', '3']),
    ).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/not both/) });
    await expect(cli(['create', '--name', 'bad', '--role', 'viewer', '--expires-days=-1'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/whole number of days/),
    });
    const json = JSON.parse((await cli(['create', '--name', 'js', '--role', 'viewer', '--json'])).stdout) as {
      expires_at: string | null;
    };
    expect(Date.parse(json.expires_at ?? '')).toBeGreaterThan(Date.now() + 89 * DAY);
  });
});
