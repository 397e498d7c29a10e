/** `spm-orchestrator token create|list|revoke` as an operator runs it. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { hashToken } from '../src/services/tokens.ts';
import { createTestDatabase } from './helpers/db.ts';

const run = promisify(execFile);
let t: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(() => t.drop());

function cli(args: string[]) {
  return run(process.execPath, ['src/main.ts', 'token', ...args], { env: { ...process.env, DATABASE_URL: t.url } });
}

describe('token CLI', () => {
  it('creates a token shown once and stores only its SHA-256', async () => {
    const { stdout } = await cli(['create', '--name', 'alice', '--role', 'approver', '--expires-days', '90']);
    const token = /^(spm_[A-Za-z0-9_-]{43})$/m.exec(stdout)?.[1];
    expect(token).toBeDefined();
    const row = await t.db.one(sql.type(
      z.object({ token_hash: z.string(), role: z.string(), expires_at: z.number().nullable() }),
    )`
      SELECT token_hash, role, expires_at FROM api_tokens WHERE name = 'alice'`);
    expect(row.token_hash).toBe(hashToken(token!));
    expect(row.role).toBe('approver');
    expect(row.expires_at).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    const dump = await t.db.oneFirst(
      sql.type(z.object({ d: z.string() }))`SELECT string_agg(row_to_json(a)::text, '') AS d FROM api_tokens a`,
    );
    expect(dump).not.toContain(token!.slice(4));
  });

  it('lists and revokes; refuses bad arguments with a clear line', async () => {
    const { stdout } = await cli(['list']);
    expect(stdout).toMatch(/approver\s+active\s+alice/);
    const id = /^(\d+)\s/m.exec(stdout)![1]!;
    expect((await cli(['revoke', id])).stdout).toMatch(/revoked/);
    expect((await cli(['list'])).stdout).toMatch(/revoked\s+alice/);
    await expect(cli(['revoke', id])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/no active token matches/),
    });
    await expect(cli(['create', '--name', 'bob', '--role', 'root'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/--role must be one of viewer, operator, approver, admin/),
    });
    await expect(cli(['create', '--role', 'viewer'])).rejects.toMatchObject({
      stderr: expect.stringMatching(/--name is required/),
    });
  });

  it('gives every token a person (the name made unique, or --person) and audits every change in its transaction', async () => {
    // alice exists (first test): a second token named alice is another person unless told.
    const other = await cli(['create', '--name', 'alice', '--role', 'viewer']);
    expect(other.stdout).toMatch(/acting as alice#\d+/);
    const same = await cli(['create', '--name', 'alice-ci', '--person', 'alice', '--role', 'operator']);
    expect(same.stdout).toMatch(/acting as alice,/);
    await expect(cli(['create', '--name', 'x', '--person', 'scheduler', '--role', 'viewer'])).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/--person must be/),
    });
    const rows = await t.db.any(sql.type(
      z.object({
        actor: z.string(),
        action: z.string(),
        outcome: z.string(),
        target_id: z.string().nullable(),
        details: z.any(),
      }),
    )`
      SELECT actor, action, outcome, target_id, details FROM audit_log WHERE target_type = 'api_token' ORDER BY seq`);
    expect(rows.map((r) => [r.action, r.outcome])).toEqual([
      ['token create', 'succeeded'],
      ['token revoke', 'succeeded'],
      ['token revoke', 'failed'],
      ['token create', 'succeeded'],
      ['token create', 'succeeded'],
    ]);
    expect(rows.every((r) => r.actor.startsWith('cli:'))).toBe(true);
    expect(rows[0]!.details).toMatchObject({ name: 'alice', person: 'alice', role: 'approver' });
    expect(rows.at(-1)!.details).toMatchObject({ name: 'alice-ci', person: 'alice', role: 'operator' });
    // No secret in the audit trail.
    const dump = await t.db.oneFirst(
      sql.type(z.object({ d: z.string() }))`SELECT string_agg(details::text, '') AS d FROM audit_log`,
    );
    expect(dump).not.toMatch(/spm_[A-Za-z0-9_-]{43}|[0-9a-f]{64}/);
  });
});
