/**
 * Configuration: environment variables (and `.env`), validated once at start.
 *
 * `parseConfig(env)` is pure: it returns a typed `Config` or throws `ConfigError` with one line per
 * problem, naming the variable and what is expected. Runtime-tunable values (score weights,
 * thresholds, test systems, windows) live in the `orchestrator_config` table, not here.
 */
import { readFileSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseEnv } from 'node:util';
import { ConfigError } from './errors.ts';
import { envSchema, type Env } from './configSchema.ts';

export type { Env } from './configSchema.ts';

export interface Config {
  env: Env['NODE_ENV'];
  logLevel: Env['LOG_LEVEL'];
  instanceId: string;
  /** `authFailures`: unknown bearer tokens per client address in a sliding window, then 429. */
  http: {
    host: string;
    port: number;
    bodyLimitBytes: number;
    shutdownGraceMs: number;
    trustProxy: boolean;
    authFailures: { maxPerIp: number; windowMs: number };
  };
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
      authFailures: { maxPerIp: e.API_AUTH_MAX_FAILURES_PER_IP, windowMs: e.API_AUTH_WINDOW_SECONDS * 1000 },
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
