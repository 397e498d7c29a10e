/** The Salt client against the lab Salt API (rest_cherrypy shape). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabSalt } from '../src/lab/salt.ts';
import { SaltClient } from '../src/services/salt/client.ts';

const lab = new LabSalt(['test-ubuntu-01', 'test-rhel-01', 'test-debian-01']);
let url: string;
beforeAll(async () => {
  url = await lab.serve();
});
afterAll(() => lab.close());

const client = () => new SaltClient({ url, user: 'salt', password: 'salt', eauth: 'pam', timeoutMs: 5000 });

describe('Salt client', () => {
  it('logs in once, runs local calls, and names minions that did not answer', async () => {
    const c = client();
    lab.minions.get('test-rhel-01')!.up = false;
    const r = await c.local<boolean>(['test-ubuntu-01', 'test-rhel-01'], 'test.ping');
    expect(r).toEqual({ returned: { 'test-ubuntu-01': true }, missing: ['test-rhel-01'] });
    const v = await c.local<Record<string, string>>(['test-ubuntu-01'], 'pkg.version', ['openssl', 'nginx']);
    expect(v.returned['test-ubuntu-01']).toEqual({ openssl: '3.0.13-0ubuntu3', nginx: '1.24.0-2ubuntu7' });
    expect(
      (await c.local<boolean>(['test-ubuntu-01'], 'service.status', ['nginx.service'])).returned['test-ubuntu-01'],
    ).toBe(true);
    expect(c.logins).toBe(1);
    lab.minions.get('test-rhel-01')!.up = true;
  });

  it('logs in again when the token expired (401) and carries on', async () => {
    const c = client();
    await c.local(['test-ubuntu-01'], 'test.ping');
    lab.expireTokens();
    expect((await c.local(['test-ubuntu-01'], 'test.ping')).returned).toEqual({ 'test-ubuntu-01': true });
    expect(c.logins).toBe(2);
  });

  it('refuses bad credentials clearly', async () => {
    await expect(
      new SaltClient({ url, user: 'salt', password: 'nope', eauth: 'pam' }).local(['x'], 'test.ping'),
    ).rejects.toThrow(/login refused \(401\)/);
  });

  it('local_async + job lookup: a rebooting minion is missing until it is back', async () => {
    const c = client();
    lab.rebootMs = 300;
    await c.local(['test-debian-01'], 'system.reboot');
    const started = await c.localAsync(['test-debian-01', 'test-ubuntu-01'], 'test.ping');
    expect([...started.minions].sort()).toEqual(['test-debian-01', 'test-ubuntu-01']);
    const job = await c.job<boolean>(started.jid);
    expect(job.missing).toEqual(['test-debian-01']);
    await new Promise((r) => setTimeout(r, 350));
    expect((await c.local(['test-debian-01'], 'test.ping')).missing).toEqual([]);
  });

  it('a snapshot carries its effect key and is taken once even when retried', async () => {
    const c = client();
    const first = await c.snapshotOnce('test-ubuntu-01', '7:1:snapshot');
    const again = await c.snapshotOnce('test-ubuntu-01', '7:1:snapshot');
    expect(first).toMatchObject({ created: true });
    expect(again).toEqual({ id: first.id, created: false });
    expect(lab.count('snapper.create_snapshot')).toBe(1);
    lab.minions.get('test-rhel-01')!.up = false;
    await expect(c.snapshotOnce('test-rhel-01', '8:1:snapshot')).rejects.toThrow(/not responding/);
    lab.minions.get('test-rhel-01')!.up = true;
  });

  it('the lab answers like rest_cherrypy: 400 for a non-list, 401 for a malformed token', async () => {
    const login = await fetch(`${url}/login`, {
      method: 'POST',
      body: JSON.stringify({ username: 'salt', password: 'salt', eauth: 'pam' }),
      headers: { 'content-type': 'application/json' },
    });
    const token = login.headers.get('x-auth-token')!;
    const notList = await fetch(`${url}/`, {
      method: 'POST',
      body: '{"client":"local"}',
      headers: { 'x-auth-token': token },
    });
    expect(notList.status).toBe(400);
    expect(await notList.text()).toMatch(/Lowstates must be a list/);
    expect(
      (await fetch(`${url}/`, { method: 'POST', body: '[]', headers: { 'x-auth-token': 'not-hex!' } })).status,
    ).toBe(401);
  });
});
