import { pino } from 'pino';
import { parseConfig, type Config } from '../../src/config.ts';
import type { BaseDeps } from '../../src/interfaces.ts';
import type { Db } from '../../src/persistence/db.ts';

export const silentLogger = pino({ level: 'silent' });

export function testConfig(env: Record<string, string> = {}): Config {
  return parseConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env });
}

export function baseDeps(db: Db, env: Record<string, string> = {}): BaseDeps {
  return {
    config: testConfig(env),
    logger: silentLogger,
    db,
    version: '0.0.0-test',
    startedAt: Date.now(),
    lifecycle: { state: 'running' },
  };
}
