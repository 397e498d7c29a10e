/** The environment variables the daemon reads: their zod schema, defaults and checks (see config.ts). */
import { isIP } from 'node:net';
import { z } from 'zod';

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
export const envSchema = z.object({
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
  API_AUTH_MAX_FAILURES_PER_IP: int('API_AUTH_MAX_FAILURES_PER_IP', 1, 1000000).default(50),
  API_AUTH_WINDOW_SECONDS: int('API_AUTH_WINDOW_SECONDS', 10, 86400).default(900),
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

/** An IPv4 or IPv6 address, optionally with a prefix length (`10.0.0.0/8`, `fd00::/64`, `127.0.0.1`). */
function isCidr(v: string): boolean {
  const [addr = '', bits, ...more] = v.split('/');
  const family = isIP(addr);
  if (family === 0 || more.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
