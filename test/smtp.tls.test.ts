/**
 * SMTP AUTH only over TLS unless explicitly allowed: the configuration refuses AUTH over a clear
 * connection at start, and the transport never sends the password to a relay that does not offer
 * STARTTLS when TLS is required (a real nodemailer against a real smtp-server).
 */
import type { AddressInfo } from 'node:net';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.ts';
import { smtpTransportOptions } from '../src/services/smtpTransport.ts';

const auths: string[] = [];
const server = new SMTPServer({
  disabledCommands: ['STARTTLS'],
  allowInsecureAuth: true,
  logger: false,
  onAuth: (auth, _session, cb) => {
    auths.push(auth.username ?? '');
    cb(null, { user: auth.username });
  },
  onData: (stream, _session, cb) => {
    stream.resume();
    stream.on('end', () => cb());
  },
});
let port = 0;

beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const base = {
  NODE_ENV: 'test',
  SMTP_HOST: 'mail.example',
  SMTP_PORT: '587',
  SMTP_USER: 'spm',
  SMTP_PASSWORD: 'pw-canary',
};

describe('SMTP AUTH needs TLS', () => {
  it('the configuration refuses AUTH without TLS, unless SMTP_ALLOW_PLAINTEXT_AUTH says so', () => {
    expect(() => parseConfig(base)).toThrow(
      /SMTP_USER: SMTP AUTH would send the password in clear text: set SMTP_SECURE=true .* or SMTP_REQUIRE_TLS=true/,
    );
    expect(() => parseConfig(base)).not.toThrow(/pw-canary/);
    expect(parseConfig({ ...base, SMTP_REQUIRE_TLS: 'true' }).smtp).toMatchObject({ requireTls: true, secure: false });
    expect(parseConfig({ ...base, SMTP_SECURE: 'true', SMTP_PORT: '465' }).smtp).toMatchObject({ secure: true });
    expect(parseConfig({ ...base, SMTP_ALLOW_PLAINTEXT_AUTH: 'true' }).smtp).toMatchObject({
      allowPlaintextAuth: true,
    });
    // Without AUTH nothing is asked.
    expect(parseConfig({ NODE_ENV: 'test', SMTP_HOST: 'mail.example' }).smtp).toMatchObject({
      secure: false,
      requireTls: false,
    });
    expect(() =>
      parseConfig({ NODE_ENV: 'test', SMTP_HOST: 'mail.example', SMTP_PASSWORD: 'x', SMTP_REQUIRE_TLS: 'true' }),
    ).toThrow(/SMTP_PASSWORD: only with SMTP_USER/);
  });

  it('the transport options: requireTLS for STARTTLS, never AUTH in clear unless allowed', () => {
    expect(() => smtpTransportOptions({ host: 'h', port: 25, secure: false, user: 'u', password: 'p' })).toThrow(
      /SMTP AUTH without TLS is refused/,
    );
    expect(
      smtpTransportOptions({ host: 'h', port: 587, secure: false, requireTls: true, user: 'u', password: 'p' }),
    ).toMatchObject({ requireTLS: true, auth: { user: 'u' } });
    expect(smtpTransportOptions({ host: 'h', port: 465, secure: true, user: 'u', password: 'p' })).toMatchObject({
      secure: true,
    });
    expect(smtpTransportOptions({ host: 'h', port: 25, secure: false })).toMatchObject({ ignoreTLS: true });
  });

  it('a relay without STARTTLS never sees the password when TLS is required; with the explicit switch it does', async () => {
    const mail = { from: 'spm@example.test', to: 'ops@example.test', subject: 's', text: 'b' };
    const strict = nodemailer.createTransport(
      smtpTransportOptions({ host: '127.0.0.1', port, secure: false, requireTls: true, user: 'spm', password: 'pw' }),
    );
    await expect(strict.sendMail(mail)).rejects.toThrow(/STARTTLS/i);
    strict.close();
    expect(auths).toEqual([]);
    const lax = nodemailer.createTransport(
      smtpTransportOptions({
        host: '127.0.0.1',
        port,
        secure: false,
        allowPlaintextAuth: true,
        user: 'spm',
        password: 'pw',
      }),
    );
    await lax.sendMail(mail);
    lax.close();
    expect(auths).toEqual(['spm']);
  });
});
