/** The recording and alert rules in prometheus/rules are valid and do what their unit tests say (promtool). */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const PROMTOOL = process.env.PROMTOOL_BIN ?? '/usr/bin/promtool';

describe('prometheus/rules', () => {
  it('promtool check rules accepts them and promtool test rules passes', () => {
    expect(existsSync(PROMTOOL), `${PROMTOOL} missing: apt-get install -y prometheus (.ci/run does)`).toBe(true);
    const check = execFileSync(PROMTOOL, ['check', 'rules', 'prometheus/rules/spm.rules.yml'], { encoding: 'utf8' });
    expect(check).toContain('SUCCESS');
    const test = execFileSync(PROMTOOL, ['test', 'rules', 'prometheus/rules/spm.rules.test.yml'], { encoding: 'utf8' });
    expect(test).toContain('SUCCESS');
  });
});
