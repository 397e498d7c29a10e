#!/usr/bin/env node
/**
 * `spm-orchestrator <command>`: serve (the daemon), migrate, doctor, token create|list|revoke,
 * audit verify|anchor.
 * Errors at start print one line (no stack trace) and exit non-zero; configuration problems print
 * one line per variable and exit 78 (EX_CONFIG).
 */
import { parseArgs } from 'node:util';
import { loadEnv, parseConfig, type Config } from './config.ts';
import { ConfigError, EXIT_CONFIG, coerceError } from './errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { flushLogger, handleShutdownSignals } from './signals.ts';

const USAGE = `usage: spm-orchestrator <command>

commands:
  serve                         run the daemon (HTTP API on HTTP_PORT, default 5001)
  migrate                       apply pending database migrations and exit
  doctor                        check configuration and every dependency
  lab                           the demo: embedded DB, lab UYUNI and NVD, the daemon wired to them
  token create --name N --role viewer|operator|approver|admin [--person P] [--expires-days D | --no-expiry]
                                (expires in 90 days unless told; --expires-days 0 or --no-expiry: never)
  token list
  token revoke <id|prefix>
  audit verify                  check the audit log, every entry's journal and the anchors (exit 1 on tamper)
  audit anchor                  record (and print) an anchor of the audit and journal chain heads
`;

function fail(message: string, code = 1): never {
  process.stderr.write(`spm-orchestrator: ${message}\n`);
  process.exit(code);
}

function loadConfig(): Config {
  try {
    return parseConfig(loadEnv());
  } catch (raw) {
    if (raw instanceof ConfigError) {
      process.stderr.write('spm-orchestrator: invalid configuration\n');
      for (const p of raw.problems) process.stderr.write(`  ${p}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw raw;
  }
}

async function serve(config: Config, logger: Logger): Promise<void> {
  // The pid to signal: `npm start` execs into this process, so it is also npm's child's.
  logger.info({ pid: process.pid, node: process.version }, 'spm-orchestrator starting');
  const shutdown = handleShutdownSignals(logger);
  const { startDaemon } = await import('./daemon.ts');
  shutdown.started(await startDaemon(config, logger));
}

async function withDatabase<T>(
  config: Config,
  logger: Logger,
  fn: (url: string, db: import('./persistence/db.ts').Db) => Promise<T>,
): Promise<T> {
  const { Releasers } = await import('./releasers.ts');
  const { openDatabase } = await import('./persistence/open.ts');
  const { migrate } = await import('./persistence/migrate.ts');
  const releasers = new Releasers();
  try {
    const { url, db } = await openDatabase(config, logger, releasers);
    await migrate(url);
    return await fn(url, db);
  } finally {
    await releasers.release(logger);
  }
}

async function token(config: Config, logger: Logger, args: string[]): Promise<void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      name: { type: 'string' },
      role: { type: 'string' },
      person: { type: 'string' },
      'expires-days': { type: 'string' },
      'no-expiry': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  const tokens = await import('./services/tokens.ts');
  const q = await import('./persistence/sql/tokens.ts');
  const { insertAudit } = await import('./persistence/sql/audit.ts');
  // Every token change is in audit_log, in the transaction of the change, as the CLI's user.
  const cliActor = `cli:${process.env.USER ?? 'unknown'}`;
  const audited = (
    action: string,
    outcome: 'succeeded' | 'failed',
    target: string | null,
    details: Record<string, unknown>,
  ) => ({
    actor: cliActor,
    tokenId: null,
    action,
    method: 'CLI',
    path: `token ${action.split(' ')[1]}`,
    targetType: 'api_token',
    targetId: target,
    outcome,
    statusCode: 0,
    ip: null,
    userAgent: null,
    requestId: null,
    details,
  });
  if (sub === 'create') {
    const name = values.name?.trim();
    if (!name) fail('token create: --name is required');
    const role = values.role as (typeof tokens.ROLES)[number] | undefined;
    if (role === undefined || !tokens.ROLES.includes(role))
      fail(`token create: --role must be one of ${tokens.ROLES.join(', ')}`);
    const days = values['expires-days'];
    if (days !== undefined && !/^\d{1,5}$/.test(days))
      fail('token create: --expires-days must be a whole number of days (0: never expires)');
    if (days !== undefined && values['no-expiry']) fail('token create: give --expires-days or --no-expiry, not both');
    // An expiry unless one is refused explicitly: a forgotten token stops working on its own.
    const expiresInDays =
      days === undefined
        ? values['no-expiry']
          ? null
          : tokens.DEFAULT_TOKEN_EXPIRY_DAYS
        : Number(days) === 0
          ? null
          : Number(days);
    // The person the token acts as (several tokens may share one); absent: the name made unique.
    const person = values.person?.trim();
    if (person !== undefined && !tokens.validPerson(person)) {
      fail(
        `token create: --person must be 1–120 characters without ':' or control characters, and none of ${tokens.RESERVED_PERSONS.join(', ')}`,
      );
    }
    const t = tokens.generateToken();
    const row = await withDatabase(config, logger, (_url, db) =>
      db.transaction(async (tx) => {
        const r = await q.insertToken(tx, {
          name,
          person: person ?? null,
          prefix: t.prefix,
          hash: t.hash,
          role,
          createdBy: cliActor,
          expiresInDays,
        });
        await insertAudit(
          tx,
          audited('token create', 'succeeded', String(r.id), {
            name: r.name,
            person: r.person,
            role: r.role,
            prefix: r.prefix,
            expires_at: r.expires_at,
          }),
        );
        return r;
      }),
    );
    const expires =
      row.expires_at === null ? 'never expires' : `expires ${new Date(row.expires_at).toISOString().slice(0, 10)}`;
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ id: row.id, token: t.token, role, person: row.person, expires_at: row.expires_at === null ? null : new Date(row.expires_at).toISOString() })}\n`
        : `token ${row.id} (${role}, acting as ${row.person}, ${expires}) created; it is shown only once:\n${t.token}\n`,
    );
  } else if (sub === 'list') {
    const rows = await withDatabase(config, logger, (_url, db) => q.listTokens(db));
    for (const r of rows) {
      const state = r.revoked_at ? 'revoked' : r.expires_at && r.expires_at < Date.now() ? 'expired' : 'active';
      process.stdout.write(
        `${String(r.id).padEnd(5)} ${r.prefix}…  ${r.role.padEnd(9)} ${state.padEnd(8)} ${r.name}\n`,
      );
    }
  } else if (sub === 'revoke') {
    const target = positionals[0];
    if (!target) fail('token revoke: give a token id or prefix');
    const rows = await withDatabase(config, logger, (_url, db) =>
      db.transaction(async (tx) => {
        const revoked = await q.revokeToken(tx, target);
        for (const r of revoked)
          await insertAudit(
            tx,
            audited('token revoke', 'succeeded', String(r.id), {
              name: r.name,
              person: r.person,
              role: r.role,
              prefix: r.prefix,
            }),
          );
        // A revoke that matched nothing is recorded too.
        if (revoked.length === 0)
          await insertAudit(tx, audited('token revoke', 'failed', null, { target: target.slice(0, 100) }));
        return revoked;
      }),
    );
    if (rows.length === 0) fail(`token revoke: no active token matches ${JSON.stringify(target)}`);
    process.stdout.write(`revoked ${rows.map((r) => `${r.id} (${r.name})`).join(', ')}\n`);
  } else {
    fail(`token: unknown subcommand ${JSON.stringify(sub ?? '')}\n${USAGE}`, 2);
  }
}

/** `audit verify`: one line per problem, exit 1 naming the first bad row; `audit anchor`: one anchor. */
async function audit(config: Config, logger: Logger, args: string[]): Promise<void> {
  const [sub] = args;
  if (sub === 'verify') {
    const { verifyAudit, describeProblem, problemRow } = await import('./persistence/auditVerify.ts');
    const r = await withDatabase(config, logger, (_url, db) => verifyAudit(db));
    const counts = `${r.auditRows} audit rows, ${r.journalRows} journal rows in ${r.entries} entries, ${r.anchors} anchors`;
    if (r.firstBad === null) {
      process.stdout.write(`audit verify: ${counts}: intact\n`);
      return;
    }
    for (const p of r.problems) process.stdout.write(`audit verify: ${describeProblem(p)}\n`);
    if (r.problemCount > r.problems.length)
      process.stdout.write(`audit verify: … and ${r.problemCount - r.problems.length} more\n`);
    fail(
      `audit verify: ${counts}: TAMPERED, ${r.problemCount} problem(s); first bad row ${problemRow(r.firstBad)}: ${r.firstBad.why}`,
    );
  } else if (sub === 'anchor') {
    const { recordAuditAnchor } = await import('./persistence/auditChain.ts');
    const a = await withDatabase(config, logger, (_url, db) =>
      recordAuditAnchor(db, { recordedBy: `cli:${process.env.USER ?? 'unknown'}`, logger }),
    );
    process.stdout.write(
      `audit anchor ${a.seq}: audit_log seq ${a.auditSeq} ${a.auditHash}, ${a.journalEntries} journal heads (${a.journalRows} rows) digest ${a.journalDigest}, hash ${a.hash}\n`,
    );
  } else {
    fail(`audit: unknown subcommand ${JSON.stringify(sub ?? '')}\n${USAGE}`, 2);
  }
}

/** `lab`: the lab servers and the daemon in this process; the CLI dispatches to src/lab only for it. */
async function lab(): Promise<void> {
  const env = loadEnv();
  const base = loadConfig();
  const logger = createLogger({
    level: base.logLevel === 'info' ? 'warn' : base.logLevel,
    instanceId: base.instanceId,
  });
  const out = (l: string) => process.stdout.write(`${l}\n`);
  out(`lab: starting (pid ${process.pid}; SIGTERM or Ctrl-C stops everything it started)`);
  const shutdown = handleShutdownSignals(logger);
  try {
    const { runLab } = await import('./lab/run.ts');
    shutdown.started(await runLab(env, logger, out));
  } catch (raw) {
    fail(`lab: ${coerceError(raw).message}`);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    process.exit(command === undefined ? 2 : 0);
  }
  if (!['serve', 'migrate', 'doctor', 'token', 'audit', 'lab'].includes(command))
    fail(`unknown command ${JSON.stringify(command)}\n${USAGE}`, 2);

  if (command === 'lab') return lab();
  const config = loadConfig();
  // CLI commands keep stdout for their own output: their logs go to stderr.
  const logger = createLogger({
    level: command === 'serve' ? config.logLevel : config.logLevel === 'info' ? 'warn' : config.logLevel,
    instanceId: config.instanceId,
    ...(command === 'serve' ? {} : { destination: (await import('pino')).pino.destination({ fd: 2, sync: true }) }),
  });

  try {
    if (command === 'serve') return await serve(config, logger);
    if (command === 'migrate') {
      const res = await withDatabase(config, logger, async () => undefined).then(async () => {
        const { currentSchemaVersion } = await import('./persistence/migrate.ts');
        return config.database.url ? currentSchemaVersion(config.database.url) : null;
      });
      process.stdout.write(`migrate: schema up to date${res === null ? '' : ` (version ${res})`}\n`);
      return;
    }
    if (command === 'doctor') {
      const { runDoctor } = await import('./doctor.ts');
      process.exitCode = await runDoctor(config, logger, (l) => process.stdout.write(`${l}\n`));
      return;
    }
    if (command === 'token') return await token(config, logger, args);
    if (command === 'audit') return await audit(config, logger, args);
  } catch (raw) {
    const err = coerceError(raw);
    logger.debug({ err }, 'command failed');
    await flushLogger(logger);
    // A configuration problem found only once running (e.g. a duplicate INSTANCE_ID): exit 78, so
    // systemd does not restart into the same refusal.
    if (raw instanceof ConfigError) fail(`${command}: ${raw.problems.join('; ')}`, EXIT_CONFIG);
    fail(
      `${command}: ${err.message}${err.cause instanceof Error && err.cause.message !== err.message ? ` (${err.cause.message})` : ''}`,
    );
  }
}

await main(process.argv.slice(2));
