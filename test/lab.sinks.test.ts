/** The lab's notification sinks speak the real protocols: SMTP (nodemailer) and signed webhooks. */
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signWebhook, SmtpSink, WebhookSink } from '../src/lab/sinks.ts';

const smtp = new SmtpSink();
const hooks = new WebhookSink('lab-secret');
let smtpAddr: { host: string; port: number };
let hookUrl: string;
beforeAll(async () => {
  smtpAddr = await smtp.listen();
  hookUrl = await hooks.serve();
});
afterAll(async () => {
  await smtp.close();
  await hooks.close();
});

describe('lab SMTP sink', () => {
  it('receives mail over SMTP and can refuse temporarily (451)', async () => {
    const t = nodemailer.createTransport({ host: smtpAddr.host, port: smtpAddr.port, secure: false, ignoreTLS: true });
    await t.sendMail({
      from: 'spm@lab',
      to: 'ops@lab',
      subject: 'USN-7001-1 pending approval',
      text: 'Test passed; waiting for approval.',
    });
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]).toMatchObject({
      from: 'spm@lab',
      to: ['ops@lab'],
      subject: 'USN-7001-1 pending approval',
    });
    smtp.failNext = 1;
    await expect(t.sendMail({ from: 'spm@lab', to: 'ops@lab', subject: 'x', text: 'x' })).rejects.toMatchObject({
      responseCode: 451,
    });
    t.close();
  });
});

describe('lab webhook sink', () => {
  it('accepts a correctly signed POST and flags a wrong signature', async () => {
    const body = JSON.stringify({ type: 'pending_approval', errata_id: '7001-1' });
    const ok = await fetch(hookUrl, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-spm-signature': signWebhook('lab-secret', body) },
    });
    expect(ok.status).toBe(204);
    const bad = await fetch(hookUrl, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-spm-signature': signWebhook('wrong', body) },
    });
    expect(bad.status).toBe(401);
    expect(hooks.received.map((r) => r.signatureValid)).toEqual([true, false]);
    hooks.failNext = 1;
    expect((await fetch(hookUrl, { method: 'POST', body })).status).toBe(503);
  });
});
