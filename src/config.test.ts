import { describe, expect, it } from 'vitest';
import { parseConfig, redactUrl } from './config.ts';
import { ConfigError } from './errors.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    parseConfig(env);
  } catch (raw) {
    if (raw instanceof ConfigError) return raw.problems;
    throw raw;
  }
  return [];
}

describe('parseConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const c = parseConfig({});
    expect(c.http.port).toBe(5001);
    expect(c.database.url).toBeUndefined();
    expect(c.database.embedded).toEqual({ dir: './var/pg', port: 54329 });
    expect(c.uyuni).toBeUndefined();
    expect(c.inspect.mode).toBe('off');
  });

  it('names the variable and the expected form, one line per problem', () => {
    const problems = problemsOf({
      UYUNI_SYNC_WORKERS: 'abc',
      DATABASE_URL: 'mysql://db/x',
      HTTP_PORT: '70000',
      LOG_LEVEL: 'loud',
    });
    expect(problems).toHaveLength(4);
    expect(problems).toContain('UYUNI_SYNC_WORKERS: expected an integer from 1 to 100, got "abc"');
    expect(problems.find((p) => p.startsWith('DATABASE_URL:'))).toMatch(/expected postgres:\/\//);
    expect(problems.find((p) => p.startsWith('HTTP_PORT:'))).toMatch(/0 to 65535/);
    expect(problems.find((p) => p.startsWith('LOG_LEVEL:'))).toMatch(/expected one of/);
  });

  it('never echoes a secret value in a problem line', () => {
    const problems = problemsOf({
      DATABASE_URL: 'not a url with hunter2',
      UYUNI_URL: 'https://uyuni',
      UYUNI_USER: 'admin',
    });
    expect(problems.join('\n')).not.toContain('hunter2');
    expect(problems).toContain('UYUNI_PASSWORD: required when UYUNI_URL is set');
  });

  it('rejects booleans it cannot read', () => {
    expect(problemsOf({ UYUNI_VERIFY_SSL: 'maybe' })[0]).toMatch(/^UYUNI_VERIFY_SSL: expected true or false/);
    expect(
      parseConfig({ UYUNI_VERIFY_SSL: 'no', UYUNI_URL: 'https://u', UYUNI_USER: 'a', UYUNI_PASSWORD: 'b' }).uyuni
        ?.verifySsl,
    ).toBe(false);
  });

  it('builds the database URL from DB_* and refuses both forms at once', () => {
    const c = parseConfig({ DB_HOST: 'db.example', DB_PASSWORD: 'p@ss', DB_NAME: 'spm' });
    expect(c.database.url).toBe('postgres://spm_orch:p%40ss@db.example:5432/spm');
    expect(problemsOf({ DB_HOST: 'h', DATABASE_URL: 'postgres://u:p@h/d' })[0]).toMatch(/^DB_HOST: set either/);
  });

  it('treats empty values as unset', () => {
    expect(parseConfig({ UYUNI_URL: '', HTTP_PORT: '' }).http.port).toBe(5001);
  });

  it('refuses settings it cannot honour instead of ignoring them', () => {
    expect(() =>
      parseConfig({
        SALT_API_URL: 'https://salt.example:9080',
        SALT_USER: 'u',
        SALT_PASSWORD: 'p',
        SALT_VERIFY_SSL: 'false',
      }),
    ).toThrow(/SALT_VERIFY_SSL: false is not supported/);
  });

  it('refuses the fake-world test seam in production', () => {
    expect(problemsOf({ NODE_ENV: 'production', SPM_TEST_FAKE_WORLD_URL: 'http://127.0.0.1:9' })[0]).toMatch(
      /^SPM_TEST_FAKE_WORLD_URL: a test seam/,
    );
  });

  it('keeps inspection on localhost', () => {
    expect(problemsOf({ INSPECT: 'websocket', INSPECT_WS_URL: 'wss://stately.example/x' })[0]).toMatch(
      /^INSPECT_WS_URL:/,
    );
  });

  it('redacts passwords in URLs', () => {
    expect(redactUrl('postgres://u:secret@h:5432/d')).toBe('postgres://u:***@h:5432/d');
  });
});
