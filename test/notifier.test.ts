/**
 * Notifications end to end at the protocol level: the outbox rows of an alert (once per key,
 * channel and recipient), delivery over real SMTP (smtp-server sink) and a signed webhook, retries
 * with backoff when the relay refuses, and the daily digest of pending approvals (once a day, in
 * the hour after digest_time, only when something waits).
 */
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { SmtpSink, WebhookSink } from '../src/lab/sinks.ts';
import { setConfigValue } from '../src/persistence/sql/config.ts';
import { Notifier } from '../src/scheduler/notifier.ts';
import { enqueueAlert, enqueueDigestIfDue } from '../src/services/alerts.ts';
import { FAST_SETTINGS, seedErrata, startTestSystem, waitForStatus } from './helpers/actors.ts';
import { createTestDatabase } from './helpers/db.ts';
import { silentLogger } from './helpers/deps.ts';

let t: Awaited<ReturnType<typeof createTestDatabase>>;
const smtp = new SmtpSink();
const hook = new WebhookSink('s3cret');
let notifier: Notifier;
let webhookUrl: string;

beforeAll(async () => {
  t = await createTestDatabase();
  const mail = await smtp.listen();
  webhookUrl = await hook.serve();
  await setConfigValue(
    t.db,
    'notification_config',
    {
      email_enabled: true,
      recipients: ['ops@example.test', 'sec@example.test'],
      webhook_enabled: true,
      webhook_url: webhookUrl,
      digest_time: '08:00',
      digest_timezone: 'Europe/Rome',
    },
    'test',
  );
  notifier = new Notifier({
    db: t.db,
    logger: silentLogger,
    smtp: { host: mail.host, port: mail.port, secure: false, from: 'spm@example.test' },
    webhookSecret: 's3cret',
    pollMs: 50,
  });
});
afterAll(async () => {
  await notifier.stop();
  await smtp.close();
  await hook.close();
  await t.drop();
});

const rows = () =>
  t.db.any(
    sql.type(
      z.object({ channel: z.string(), status: z.string(), attempts: z.number(), type: z.string() }),
    )`SELECT channel, status, attempts, type FROM orchestrator_notifications ORDER BY id`,
  );

describe('notifier', () => {
  it('queues one row per channel and recipient, once per key, and delivers by SMTP and signed webhook', async () => {
    const m = {
      type: 'test_failed' as const,
      key: 'k1',
      errataId: null,
      queueId: null,
      subject: 'Test failed: X',
      body: 'details',
    };
    expect(await enqueueAlert(t.db, m)).toBe(3);
    expect(await enqueueAlert(t.db, m)).toBe(0);
    smtp.failNext = 1; // the relay refuses once: retried later
    expect(await notifier.deliverBatch()).toBe(3);
    expect((await rows()).map((r) => [r.channel, r.status])).toEqual([
      ['email', 'pending'],
      ['email', 'sent'],
      ['webhook', 'sent'],
    ]);
    await t.db.query(sql.unsafe`UPDATE orchestrator_notifications SET next_attempt_at = now()`);
    await notifier.deliverBatch();
    expect((await rows()).every((r) => r.status === 'sent')).toBe(true);
    expect(smtp.messages.map((x) => x.subject)).toEqual(['[SPM] Test failed: X', '[SPM] Test failed: X']);
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]!.signatureValid).toBe(true);
  });

  it('the daily digest goes out once, in the hour after digest_time in its time zone, when something waits', async () => {
    await t.db.query(sql.unsafe`DELETE FROM orchestrator_notifications`);
    const at = (iso: string) => Date.parse(iso);
    // Nothing pending: nothing to send.
    expect(await enqueueDigestIfDue(t.db, at('2026-11-23T07:10:00Z'))).toBe(0);
    const { sys } = await startTestSystem(t.db);
    try {
      await seedErrata(t.db, ['USN-8000-1']);
      const id = await sys.host.create(
        {
          errataId: 'USN-8000-1',
          errataVersion: null,
          targetOs: 'ubuntu',
          priority: 0,
          successScore: 80,
          notes: null,
          settings: FAST_SETTINGS,
        },
        { actor: 'test' },
      );
      await sys.host.send(
        id,
        { type: 'START_TEST', by: 'test', testSystem: { id: 1, name: 'test-ubuntu-01' } },
        { actor: 'test' },
      );
      await waitForStatus(t.db, id, (s) => s === 'pending_approval');
    } finally {
      await sys.stop();
    }
    // 08:00 Europe/Rome is 07:00 UTC in November.
    expect(await enqueueDigestIfDue(t.db, at('2026-11-23T06:59:00Z'))).toBe(0);
    expect(await enqueueDigestIfDue(t.db, at('2026-11-23T07:10:00Z'))).toBe(3);
    expect(await enqueueDigestIfDue(t.db, at('2026-11-23T07:40:00Z'))).toBe(0);
    expect(await enqueueDigestIfDue(t.db, at('2026-11-23T08:05:00Z'))).toBe(0);
    expect(await enqueueDigestIfDue(t.db, at('2026-11-24T07:05:00Z'))).toBe(3);
    const body = await t.db.oneFirst(
      sql.type(
        z.object({ body: z.string() }),
      )`SELECT body FROM orchestrator_notifications WHERE type = 'daily_digest' LIMIT 1`,
    );
    expect(body).toMatch(/USN-8000-1 \(ubuntu, Medium, score 80\) waiting/);
  });

  it('a bad notification_config is an error that names the field', async () => {
    await setConfigValue(
      t.db,
      'notification_config',
      { recipients: ['not-an-address'], digest_timezone: 'Mars/Base' },
      'test',
    );
    await expect(
      enqueueAlert(t.db, { type: 'test', key: 'k9', errataId: null, queueId: null, subject: 's', body: 'b' }),
    ).rejects.toThrow(/recipients\.0.*digest_timezone|digest_timezone.*recipients\.0/);
  });
});
