/**
 * Configuration: environment variables (and `.env`), validated once at start.
 *
 * `parseConfig(env)` is pure: it returns a typed `Config` or throws `ConfigError` with one line per
 * problem, naming the variable and what is expected. Runtime-tunable values (score weights,
 * thresholds, test systems, windows) live in the `orchestrator_config` table, not here.
 */
import { readFileSync, existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const bool = (name: string) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'].includes(v), {
      message: `${name}: expected true or false`,
    })
    .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

const int = (name: string, min: number, max: number) =>
  z
    .string()
    .trim()
    .refine((v) => /^-?\d+$/.test(v) && Number(v) >= min && Number(v) <= max, {
      message: `${name}: expected an integer from ${min} to ${max}`,
    })
    .transform(Number);

/** A URL whose scheme is one of `protocols` (and, for databases, with a host and a database name). */
const urlOf = (name: string, protocols: string[], expected: string, needsPath = false) =>
  z
    .string()
    .trim()
    .refine(
      (v) => {
        try {
          const u = new URL(v);
          return protocols.includes(u.protocol) && (!needsPath || (u.hostname !== '' && u.pathname.length > 1));
        } catch {
          return false;
        }
      },
      { message: `${name}: expected ${expected}` },
    );
const httpUrl = (name: string) =>
  urlOf(name, ['http:', 'https:'], 'an http:// or https:// URL').transform((v) => v.replace(/\/+$/, ''));
const postgresUrl = (name: string) =>
  urlOf(name, ['postgres:', 'postgresql:'], 'postgres://user:password@host:port/database', true);

const nonEmpty = (name: string) =>
  z
    .string()
    .trim()
    .min(1, { message: `${name}: must not be empty` });

/** Every variable the daemon reads, with its default. `.env.example` documents the same list. */
const envSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'], { message: 'NODE_ENV: expected development, production or test' })
    .default('development'),
  LOG_LEVEL: z.enum(LOG_LEVELS, { message: `LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  INSTANCE_ID: z.string().trim().min(1).max(100).optional(),

  HTTP_HOST: nonEmpty('HTTP_HOST').default('127.0.0.1'),
  HTTP_PORT: int('HTTP_PORT', 0, 65535).default(5001),
  HTTP_BODY_LIMIT_BYTES: int('HTTP_BODY_LIMIT_BYTES', 1024, 104857600).default(1048576),
  SHUTDOWN_GRACE_SECONDS: int('SHUTDOWN_GRACE_SECONDS', 1, 600).default(4),
  TRUST_PROXY: bool('TRUST_PROXY').default(false),
  UI_PROXY_USER_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name (letters, digits, dashes)')
    .optional(),
  UI_PROXY_ROLE_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name (letters, digits, dashes)')
    .optional(),
  UI_PROXY_DEFAULT_ROLE: z.enum(['viewer', 'operator', 'approver', 'admin']).default('viewer'),
  UI_PROXY_SECRET: z
    .string()
    .min(32, 'UI_PROXY_SECRET: expected at least 32 characters (e.g. openssl rand -hex 32)')
    .max(512)
    .optional(),
  UI_PROXY_SECRET_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name (letters, digits, dashes)')
    .default('X-SPM-Proxy-Secret'),
  UI_PROXY_TRUSTED_CIDRS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== ''),
    )
    .refine((list) => list.length > 0 && list.every(isCidr), {
      message:
        'UI_PROXY_TRUSTED_CIDRS: expected a comma-separated list of addresses or CIDRs, e.g. 10.0.0.5/32,fd00::/64',
    })
    .optional(),
  UI_SESSION_IDLE_MINUTES: int('UI_SESSION_IDLE_MINUTES', 1, 1440).default(30),
  UI_SESSION_MAX_HOURS: int('UI_SESSION_MAX_HOURS', 1, 168).default(12),
  UI_LOGIN_MAX_FAILURES_PER_IP: int('UI_LOGIN_MAX_FAILURES_PER_IP', 1, 100000).default(20),
  UI_LOGIN_MAX_FAILURES_PER_USER: int('UI_LOGIN_MAX_FAILURES_PER_USER', 1, 100000).default(5),
  UI_LOGIN_WINDOW_SECONDS: int('UI_LOGIN_WINDOW_SECONDS', 10, 86400).default(900),
  METRICS_TOKEN: z
    .string()
    .regex(
      /^[A-Za-z0-9._~+/=-]{16,512}$/,
      'METRICS_TOKEN: expected 16 to 512 characters of A-Z a-z 0-9 . _ ~ + / = - (a bearer token; e.g. openssl rand -hex 32)',
    )
    .optional(),

  DATABASE_URL: postgresUrl('DATABASE_URL').optional(),
  DB_HOST: nonEmpty('DB_HOST').optional(),
  DB_PORT: int('DB_PORT', 1, 65535).default(5432),
  DB_NAME: nonEmpty('DB_NAME').default('spm_orchestrator'),
  DB_USER: nonEmpty('DB_USER').default('spm_orch'),
  DB_PASSWORD: z.string().optional(),
  DB_POOL_MAX: int('DB_POOL_MAX', 2, 200).default(10),
  /** Server-side statement timeout; the client gives up on a silent connection 5 s later. */
  DB_STATEMENT_TIMEOUT_SECONDS: int('DB_STATEMENT_TIMEOUT_SECONDS', 1, 3600).default(25),
  EMBEDDED_PG_DIR: nonEmpty('EMBEDDED_PG_DIR').default('./var/pg'),
  EMBEDDED_PG_PORT: int('EMBEDDED_PG_PORT', 1024, 65535).default(54329),

  UYUNI_URL: httpUrl('UYUNI_URL').optional(),
  UYUNI_USER: nonEmpty('UYUNI_USER').optional(),
  UYUNI_PASSWORD: z.string().optional(),
  UYUNI_VERIFY_SSL: bool('UYUNI_VERIFY_SSL').default(true),
  UYUNI_POLL_INTERVAL_MINUTES: int('UYUNI_POLL_INTERVAL_MINUTES', 1, 10080).default(30),
  UYUNI_SYNC_WORKERS: int('UYUNI_SYNC_WORKERS', 1, 100).default(10),
  UYUNI_TIMEOUT_SECONDS: int('UYUNI_TIMEOUT_SECONDS', 1, 3600).default(30),
  UYUNI_TEST_GROUP_PREFIX: nonEmpty('UYUNI_TEST_GROUP_PREFIX').default('test-'),
  UYUNI_PROD_GROUP_PREFIX: nonEmpty('UYUNI_PROD_GROUP_PREFIX').default('prod-'),

  SALT_API_URL: httpUrl('SALT_API_URL').optional(),
  SALT_USER: nonEmpty('SALT_USER').optional(),
  SALT_PASSWORD: z.string().optional(),
  SALT_EAUTH: nonEmpty('SALT_EAUTH').default('pam'),
  SALT_VERIFY_SSL: bool('SALT_VERIFY_SSL').default(true),

  PROMETHEUS_URL: httpUrl('PROMETHEUS_URL').optional(),
  PROMETHEUS_TIMEOUT_SECONDS: int('PROMETHEUS_TIMEOUT_SECONDS', 1, 300).default(10),

  SMTP_HOST: nonEmpty('SMTP_HOST').optional(),
  SMTP_PORT: int('SMTP_PORT', 1, 65535).default(25),
  SMTP_SECURE: bool('SMTP_SECURE').default(false),
  SMTP_REQUIRE_TLS: bool('SMTP_REQUIRE_TLS').default(false),
  SMTP_ALLOW_PLAINTEXT_AUTH: bool('SMTP_ALLOW_PLAINTEXT_AUTH').default(false),
  SMTP_USER: nonEmpty('SMTP_USER').optional(),
  SMTP_PASSWORD: z.string().optional(),
  SMTP_FROM: nonEmpty('SMTP_FROM').default('spm-orchestrator@localhost'),
  WEBHOOK_SECRET: z.string().optional(),
  NVD_API_KEY: z.string().optional(),
  NVD_ENABLED: bool('NVD_ENABLED').default(true),
  NVD_URL: httpUrl('NVD_URL').default('https://services.nvd.nist.gov/rest/json/cves/2.0'),

  LEASE_TTL_SECONDS: int('LEASE_TTL_SECONDS', 2, 3600).default(30),
  SCHEDULER_POLL_MS: int('SCHEDULER_POLL_MS', 50, 60000).default(1000),
  INSPECT: z.enum(['off', 'websocket'], { message: 'INSPECT: expected off or websocket' }).default('off'),
  INSPECT_WS_URL: z
    .string()
    .trim()
    .refine((v) => /^wss?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(\/.*)?$/.test(v), {
      message: 'INSPECT_WS_URL: expected a ws:// URL on localhost (inspection data never leaves the machine)',
    })
    .default('ws://localhost:8080'),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  env: Env['NODE_ENV'];
  logLevel: Env['LOG_LEVEL'];
  instanceId: string;
  http: { host: string; port: number; bodyLimitBytes: number; shutdownGraceMs: number; trustProxy: boolean };
  /** `GET /metrics`: open when `token` is undefined, else only with `Authorization: Bearer <token>`. */
  metrics: { token: string | undefined };
  /** `url` is undefined when the embedded PostgreSQL must be started. */
  database: {
    url: string | undefined;
    poolMax: number;
    statementTimeoutMs: number;
    embedded: { dir: string; port: number };
  };
  uyuni:
    | {
        url: string;
        user: string;
        password: string;
        verifySsl: boolean;
        pollIntervalMinutes: number;
        syncWorkers: number;
        timeoutMs: number;
        testGroupPrefix: string;
        prodGroupPrefix: string;
      }
    | undefined;
  salt: { url: string; user: string; password: string; eauth: string; verifySsl: boolean } | undefined;
  prometheus: { url: string; timeoutMs: number } | undefined;
  /**
   * `secure`: TLS from the first byte (port 465); `requireTls`: STARTTLS before anything else is
   * sent (port 587). AUTH over neither is refused at start unless `allowPlaintextAuth`.
   */
  smtp:
    | {
        host: string;
        port: number;
        secure: boolean;
        requireTls: boolean;
        allowPlaintextAuth: boolean;
        user: string | undefined;
        password: string | undefined;
        from: string;
      }
    | undefined;
  webhookSecret: string | undefined;
  /**
   * Dashboard sign-in by a trusted reverse proxy's header (only with TRUST_PROXY=true), accepted
   * only with the proxy's shared secret in `secretHeader` and/or from a `trustedCidrs` address.
   */
  uiProxy:
    | {
        userHeader: string;
        roleHeader: string | undefined;
        defaultRole: 'viewer' | 'operator' | 'approver' | 'admin';
        secret: string | undefined;
        secretHeader: string;
        trustedCidrs: string[] | undefined;
      }
    | undefined;
  /** Dashboard sessions (server-side) and the sign-in rate limit. */
  ui: {
    sessionIdleMs: number;
    sessionMaxMs: number;
    login: { maxFailuresPerIp: number; maxFailuresPerUser: number; windowMs: number };
  };
  nvdApiKey: string | undefined;
  nvd: { enabled: boolean; url: string };
  leaseTtlMs: number;
  schedulerPollMs: number;
  inspect: { mode: 'off' | 'websocket'; url: string };
}

/**
 * Validate an environment and compile it into a `Config`.
 * @throws ConfigError with one line per problem.
 * @example
 * const config = parseConfig({ ...process.env });
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset": `.env` files often carry `FOO=` for documentation.
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;

  const parsed = envSchema.safeParse(cleaned);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '?');
      const got = cleaned[name];
      const msg = issue.message.startsWith(`${name}:`) ? issue.message : `${name}: ${issue.message}`;
      problems.push(got === undefined || isSecretName(name) ? msg : `${msg}, got ${JSON.stringify(got)}`);
    }
  }
  // Cross-variable rules, checked on the raw values so that every problem is reported at once.
  const requireTogether = (primary: string, companions: string[]) => {
    if (cleaned[primary] === undefined) return;
    for (const n of companions) if (cleaned[n] === undefined) problems.push(`${n}: required when ${primary} is set`);
  };
  requireTogether('UYUNI_URL', ['UYUNI_USER', 'UYUNI_PASSWORD']);
  requireTogether('SALT_API_URL', ['SALT_USER', 'SALT_PASSWORD']);
  if (cleaned.SALT_VERIFY_SSL !== undefined && /^(0|false|no|off)$/i.test(String(cleaned.SALT_VERIFY_SSL))) {
    problems.push(
      'SALT_VERIFY_SSL: false is not supported (the Salt API certificate is always verified); trust a private CA with NODE_EXTRA_CA_CERTS=/path/ca.pem',
    );
  }
  if (cleaned.UI_PROXY_USER_HEADER !== undefined && !/^(1|true|yes|on)$/i.test(String(cleaned.TRUST_PROXY ?? ''))) {
    problems.push('UI_PROXY_USER_HEADER: only with TRUST_PROXY=true (the proxy must strip the header from clients)');
  }
  if (
    cleaned.UI_PROXY_USER_HEADER !== undefined &&
    cleaned.UI_PROXY_SECRET === undefined &&
    cleaned.UI_PROXY_TRUSTED_CIDRS === undefined
  ) {
    problems.push(
      "UI_PROXY_USER_HEADER: needs UI_PROXY_SECRET (a shared secret the proxy sends in UI_PROXY_SECRET_HEADER) and/or UI_PROXY_TRUSTED_CIDRS (the proxy's addresses): " +
        'without either, any client that reaches the port could sign in as anyone with any role',
    );
  }
  for (const n of ['UI_PROXY_SECRET', 'UI_PROXY_TRUSTED_CIDRS', 'UI_PROXY_ROLE_HEADER']) {
    if (cleaned[n] !== undefined && cleaned.UI_PROXY_USER_HEADER === undefined)
      problems.push(`${n}: only with UI_PROXY_USER_HEADER (proxy sign-in)`);
  }
  const smtpAuth = cleaned.SMTP_USER !== undefined || cleaned.SMTP_PASSWORD !== undefined;
  const yes = (n: string) => /^(1|true|yes|on)$/i.test(String(cleaned[n] ?? ''));
  if (
    cleaned.SMTP_HOST !== undefined &&
    smtpAuth &&
    !yes('SMTP_SECURE') &&
    !yes('SMTP_REQUIRE_TLS') &&
    !yes('SMTP_ALLOW_PLAINTEXT_AUTH')
  ) {
    problems.push(
      'SMTP_USER: SMTP AUTH would send the password in clear text: set SMTP_SECURE=true (TLS, port 465) or SMTP_REQUIRE_TLS=true (STARTTLS, port 587), ' +
        'or SMTP_ALLOW_PLAINTEXT_AUTH=true to accept that (a relay on the same host only)',
    );
  }
  if (cleaned.SMTP_PASSWORD !== undefined && cleaned.SMTP_USER === undefined)
    problems.push('SMTP_PASSWORD: only with SMTP_USER');
  if (cleaned.DATABASE_URL !== undefined && cleaned.DB_HOST !== undefined)
    problems.push('DB_HOST: set either DATABASE_URL or DB_HOST/DB_*, not both');
  // Former test seams: the fake world is now passed by the test's own entry point
  // (test/helpers/fakeWorldServe.ts), never through the daemon's configuration.
  for (const seam of ['SPM_TEST_FAKE_WORLD_URL', 'SPM_TEST_DISABLE_RECONCILE']) {
    if (cleaned[seam] !== undefined) {
      problems.push(
        `${seam}: a test seam that the daemon's configuration no longer has (tests pass the fake world through test/helpers/fakeWorldServe.ts): remove it`,
      );
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;

  let dbUrl = e.DATABASE_URL;
  if (dbUrl === undefined && e.DB_HOST !== undefined) {
    const u = new URL('postgres://localhost');
    u.hostname = e.DB_HOST;
    u.port = String(e.DB_PORT);
    u.pathname = `/${e.DB_NAME}`;
    u.username = e.DB_USER;
    if (e.DB_PASSWORD !== undefined) u.password = e.DB_PASSWORD;
    dbUrl = u.toString();
  }

  return {
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    // Stable across restarts on purpose: a restarted replica re-claims its own entries at once
    // instead of waiting for their leases to expire. Each replica needs its own INSTANCE_ID.
    instanceId: e.INSTANCE_ID ?? hostname(),
    http: {
      host: e.HTTP_HOST,
      port: e.HTTP_PORT,
      bodyLimitBytes: e.HTTP_BODY_LIMIT_BYTES,
      shutdownGraceMs: e.SHUTDOWN_GRACE_SECONDS * 1000,
      trustProxy: e.TRUST_PROXY,
    },
    metrics: { token: e.METRICS_TOKEN },
    database: {
      url: dbUrl,
      poolMax: e.DB_POOL_MAX,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_SECONDS * 1000,
      embedded: { dir: e.EMBEDDED_PG_DIR, port: e.EMBEDDED_PG_PORT },
    },
    uyuni:
      e.UYUNI_URL === undefined
        ? undefined
        : {
            url: e.UYUNI_URL,
            user: e.UYUNI_USER ?? '',
            password: e.UYUNI_PASSWORD ?? '',
            verifySsl: e.UYUNI_VERIFY_SSL,
            pollIntervalMinutes: e.UYUNI_POLL_INTERVAL_MINUTES,
            syncWorkers: e.UYUNI_SYNC_WORKERS,
            timeoutMs: e.UYUNI_TIMEOUT_SECONDS * 1000,
            testGroupPrefix: e.UYUNI_TEST_GROUP_PREFIX,
            prodGroupPrefix: e.UYUNI_PROD_GROUP_PREFIX,
          },
    salt:
      e.SALT_API_URL === undefined
        ? undefined
        : {
            url: e.SALT_API_URL,
            user: e.SALT_USER ?? '',
            password: e.SALT_PASSWORD ?? '',
            eauth: e.SALT_EAUTH,
            verifySsl: e.SALT_VERIFY_SSL,
          },
    prometheus:
      e.PROMETHEUS_URL === undefined
        ? undefined
        : { url: e.PROMETHEUS_URL, timeoutMs: e.PROMETHEUS_TIMEOUT_SECONDS * 1000 },
    smtp:
      e.SMTP_HOST === undefined
        ? undefined
        : {
            host: e.SMTP_HOST,
            port: e.SMTP_PORT,
            secure: e.SMTP_SECURE,
            requireTls: e.SMTP_REQUIRE_TLS,
            allowPlaintextAuth: e.SMTP_ALLOW_PLAINTEXT_AUTH,
            user: e.SMTP_USER,
            password: e.SMTP_PASSWORD,
            from: e.SMTP_FROM,
          },
    webhookSecret: e.WEBHOOK_SECRET,
    uiProxy:
      e.UI_PROXY_USER_HEADER === undefined
        ? undefined
        : {
            userHeader: e.UI_PROXY_USER_HEADER.toLowerCase(),
            roleHeader: e.UI_PROXY_ROLE_HEADER?.toLowerCase(),
            defaultRole: e.UI_PROXY_DEFAULT_ROLE,
            secret: e.UI_PROXY_SECRET,
            secretHeader: e.UI_PROXY_SECRET_HEADER.toLowerCase(),
            trustedCidrs: e.UI_PROXY_TRUSTED_CIDRS,
          },
    ui: {
      sessionIdleMs: e.UI_SESSION_IDLE_MINUTES * 60_000,
      sessionMaxMs: e.UI_SESSION_MAX_HOURS * 3_600_000,
      login: {
        maxFailuresPerIp: e.UI_LOGIN_MAX_FAILURES_PER_IP,
        maxFailuresPerUser: e.UI_LOGIN_MAX_FAILURES_PER_USER,
        windowMs: e.UI_LOGIN_WINDOW_SECONDS * 1000,
      },
    },
    nvdApiKey: e.NVD_API_KEY,
    nvd: { enabled: e.NVD_ENABLED, url: e.NVD_URL },
    leaseTtlMs: e.LEASE_TTL_SECONDS * 1000,
    schedulerPollMs: e.SCHEDULER_POLL_MS,
    inspect: { mode: e.INSPECT, url: e.INSPECT_WS_URL },
  };
}

/** An IPv4 or IPv6 address, optionally with a prefix length (`10.0.0.0/8`, `fd00::/64`, `127.0.0.1`). */
function isCidr(v: string): boolean {
  const [addr = '', bits, ...more] = v.split('/');
  const family = isIP(addr);
  if (family === 0 || more.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

function isSecretName(name: string): boolean {
  return /PASSWORD|SECRET|KEY|TOKEN|DATABASE_URL/.test(name);
}

/**
 * The process environment merged over `.env` (real variables win), as `parseConfig` expects it.
 * `ENV_FILE` picks another file; a missing default `.env` is fine, a missing `ENV_FILE` is not.
 */
export function loadEnv(processEnv: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const explicit = processEnv.ENV_FILE;
  const file = explicit ?? '.env';
  if (!existsSync(file)) {
    if (explicit !== undefined) throw new ConfigError([`ENV_FILE: file ${JSON.stringify(explicit)} does not exist`]);
    return { ...processEnv };
  }
  const fromFile = parseEnv(readFileSync(file, 'utf8'));
  return { ...fromFile, ...processEnv };
}

/** Redact the password of a connection URL for logs and `doctor` output. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}
