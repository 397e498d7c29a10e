/**
 * `spm-orchestrator doctor`: checks the configuration and every dependency and prints one line per
 * check — what is reachable and what is wrong. Exit code 1 when any configured dependency fails.
 */
import nodemailer from 'nodemailer';
import { smtpTransportOptions } from './services/smtpTransport.ts';
import { redactUrl, type Config } from './config.ts';
import type { Logger } from './logger.ts';
import { currentSchemaVersion, loadMigrations } from './persistence/migrate.ts';
import { openDatabase } from './persistence/open.ts';
import { Releasers } from './releasers.ts';
import { httpRequest, probePrometheus, probeSalt, timed, type ProbeResult } from './services/probes.ts';

interface Check {
  name: string;
  target: string;
  result: ProbeResult;
}

function xmlRpcCall(method: string, params: string[]): string {
  const p = params
    .map((v) => `<param><value><string>${v.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</string></value></param>`)
    .join('');
  return `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${p}</params></methodCall>`;
}

export async function runDoctor(config: Config, logger: Logger, out: (line: string) => void): Promise<number> {
  const checks: Check[] = [];
  out(
    `config   ok       ${config.env} mode, instance ${config.instanceId}, http ${config.http.host}:${config.http.port}`,
  );

  const releasers = new Releasers();
  const dbTarget = config.database.url
    ? redactUrl(config.database.url)
    : `embedded (${config.database.embedded.dir}, port ${config.database.embedded.port})`;
  checks.push({
    name: 'database',
    target: dbTarget,
    result: await timed(async () => {
      const { url } = await openDatabase(config, logger, releasers);
      const have = await currentSchemaVersion(url);
      const want = loadMigrations().length;
      if (have > want) throw new Error(`schema version ${have} is newer than this build (${want})`);
      return have === want ? `schema ${have}/${want}` : `schema ${have}/${want}: run \`spm-orchestrator migrate\``;
    }),
  });
  await releasers.release(logger);

  const uyuni = config.uyuni;
  checks.push({
    name: 'uyuni',
    target: uyuni?.url ?? '',
    result:
      uyuni === undefined
        ? { status: 'not configured' }
        : await timed(async () => {
            const login = await httpRequest(`${uyuni.url}/rpc/api`, {
              method: 'POST',
              body: xmlRpcCall('auth.login', [uyuni.user, uyuni.password]),
              headers: { 'content-type': 'text/xml' },
              verifyTls: uyuni.verifySsl,
              timeoutMs: uyuni.timeoutMs,
            });
            if (login.status !== 200) throw new Error(`auth.login: HTTP ${login.status}`);
            if (login.body.includes('<fault>'))
              throw new Error(`auth.login refused: ${/<string>([^<]*)<\/string>/.exec(login.body)?.[1] ?? 'fault'}`);
            const key = /<string>([^<]*)<\/string>/.exec(login.body)?.[1];
            if (key === undefined) throw new Error('auth.login: no session key in the answer');
            await httpRequest(`${uyuni.url}/rpc/api`, {
              method: 'POST',
              body: xmlRpcCall('auth.logout', [key]),
              headers: { 'content-type': 'text/xml' },
              verifyTls: uyuni.verifySsl,
              timeoutMs: uyuni.timeoutMs,
            });
            return `login as ${uyuni.user} ok`;
          }),
  });

  const salt = config.salt;
  checks.push({
    name: 'salt',
    target: salt?.url ?? '',
    result:
      salt === undefined
        ? await probeSalt(undefined)
        : await timed(async () => {
            const res = await httpRequest(`${salt.url}/login`, {
              method: 'POST',
              body: JSON.stringify({ username: salt.user, password: salt.password, eauth: salt.eauth }),
              headers: { 'content-type': 'application/json', accept: 'application/json' },
              verifyTls: salt.verifySsl,
              timeoutMs: 5000,
            });
            if (res.status === 401) throw new Error('login refused (401): check SALT_USER, SALT_PASSWORD, SALT_EAUTH');
            if (res.status !== 200) throw new Error(`login: HTTP ${res.status}`);
            return `login as ${salt.user} ok`;
          }),
  });

  checks.push({
    name: 'prometheus',
    target: config.prometheus?.url ?? '',
    result: await probePrometheus(config.prometheus),
  });

  const smtp = config.smtp;
  checks.push({
    name: 'smtp',
    target: smtp ? `${smtp.host}:${smtp.port}` : '',
    result:
      smtp === undefined
        ? { status: 'not configured' }
        : await timed(async () => {
            // As the notifier talks to the relay: AUTH only over TLS unless explicitly allowed.
            const transport = nodemailer.createTransport({
              ...smtpTransportOptions(smtp),
              connectionTimeout: 5000,
              greetingTimeout: 5000,
            });
            try {
              await transport.verify();
            } finally {
              transport.close();
            }
            return 'SMTP handshake ok';
          }),
  });

  let failed = 0;
  for (const c of checks) {
    const mark = c.result.status === 'connected' ? 'ok' : c.result.status === 'not configured' ? '-' : 'FAIL';
    if (mark === 'FAIL') failed++;
    out(
      `${c.name.padEnd(10)} ${mark.padEnd(6)} ${c.result.status}${c.target ? ` ${c.target}` : ''}${c.result.detail ? ` — ${c.result.detail}` : ''}`,
    );
  }
  out(failed === 0 ? 'doctor: all configured dependencies reachable' : `doctor: ${failed} problem(s)`);
  return failed === 0 ? 0 : 1;
}
