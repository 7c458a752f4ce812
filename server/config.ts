import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { boolVar, ConfigError, intVar, listVar, logLevelVar, parseEnv } from '../shared/env.js';
import { cipherFromEnv, type KeyCipher } from './keys/cipher.js';
import { DEFAULT_POLICY, type PoolPolicy } from './pools/policy.js';
import { isValidTimeZone } from './pools/windows.js';
import { resolveUpstream, upstreamSchema, type UpstreamConfig } from './upstream/config.js';
import { parseWebhooks, type WebhookTarget } from './alerts/webhooks.js';
import type { AlertEngineOptions } from './alerts/engine.js';

/** Pools that always exist, whether or not pools.json names them. */
export const BUILTIN_POOLS = ['plantid', 'healthid'] as const;

/** Names a pool cannot take: `GET /api/stats` is the stats endpoint, so a pool "stats" could never hand out. */
export const RESERVED_POOL_NAMES: readonly string[] = ['stats', 'alerts'];

/** Valid pool names; anything else is a 404 on the API and an error in pools.json. */
export const POOL_NAME = /^[a-z0-9_-]{1,64}$/u;

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/u;

const envSchema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: intVar(5000, 0, 65535),
  KEYS_DIR: z.string().default('./keys'),
  STATE_FILE: z.string().default('./api_state.json'),
  STATE_SAVE_INTERVAL_MS: intVar(2000, 50, 3_600_000),
  API_TOKENS: listVar(),
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  APPS_FILE: z.string().default('./apps.json'),
  AUDIT_FILE: z.string().default('./audit.log'),
  LOG_LEVEL: logLevelVar,
  LOG_FILE: z.string().default('logs/server.log'),
  LOG_ACCESS: boolVar(true),
  ALERT_WEBHOOKS: listVar(),
  ALERT_MIN_AVAILABLE: intVar(1, 0, 1_000_000),
  LOW_CREDITS_THRESHOLD: intVar(50, 0, 1_000_000_000),
  ALERT_RUNS_DRY_MINUTES: intVar(60, 1, 7 * 24 * 60),
  ALERT_REMIND_HOURS: intVar(6, 1, 30 * 24),
  ALERT_CHECK_INTERVAL_MS: intVar(10_000, 100, 3_600_000),
  DASHBOARD_URL: z.url({ protocol: /^https?$/u, error: 'must be an http(s) URL' }).optional(),
  STATE_BACKEND: z.enum(['file', 'redis'], 'must be file or redis').default('file'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\/\S+$/u, 'must be a redis:// or rediss:// URL')
    .default('redis://127.0.0.1:6379'),
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:.-]{1,64}$/u, 'must be 1-64 letters, digits or _ : . -')
    .default('keywarden:'),
  REDIS_ALLOW_VOLATILE: boolVar(),
  REDIS_CLUSTER_NODES: listVar(),
  REDIS_LEASES: boolVar(true),
  UPSTREAM_SYNC_INTERVAL_MS: intVar(300_000, 0, 86_400_000),
  UPSTREAM_TIMEOUT_MS: intVar(10_000, 100, 600_000),
  PROXY_MAX_ATTEMPTS: intVar(3, 1, 20),
  PROXY_MAX_BODY_BYTES: intVar(25 * 1024 * 1024, 0, 1024 * 1024 * 1024),
  PROXY_TIMEOUT_MS: intVar(60_000, 100, 3_600_000),
  PROXY_BODY_TIMEOUT_MS: intVar(30_000, 100, 3_600_000),
  MAX_RETRY_AFTER_S: intVar(3600, 1, 7 * 86_400),
  PIN_TTL_DAYS: intVar(190, 1, 3650),
  PIN_MAX: intVar(1_000_000, 1, 100_000_000),
});

export interface ServerConfig {
  /** What the start should say of how the environment was read (FLASK_RUN_PORT taken for PORT). */
  notices: string[];
  host: string;
  port: number;
  keysDir: string;
  stateFile: string;
  stateSaveIntervalMs: number;
  apiTokens: string[];
  /** Enables /admin; null leaves it off (unless an app is an admin). */
  adminToken: string | null;
  /** The named apps (apps/file.ts) and the audit trail of admin actions. */
  appsFile: string;
  auditFile: string;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFile: string;
  /** True when no API token is set and the server runs open (loopback only). */
  open: boolean;
  /** Where rotation state lives: the state file (one instance) or Redis (shared by instances). */
  stateBackend: 'file' | 'redis';
  redisUrl: string;
  redisPrefix: string;
  /** A Redis Cluster's seed nodes (host:port); empty: the one Redis at redisUrl. */
  redisClusterNodes: Array<{ host: string; port: number }>;
  /** Start on a Redis that keeps nothing across its own restart (no AOF, no snapshots). */
  redisAllowVolatile: boolean;
  /** Hand out from blocks of uses leased from Redis (redis/leases.ts); false: one script run per handout. */
  redisLeases: boolean;
  /**
   * Decrypts `enc:v1:` key-file lines and encrypts keys added through the admin API (KEYS_SECRET or
   * KEYS_SECRET_FILE).
   */
  keyCipher: KeyCipher | null;
  /** How often every key of a pool with an upstream is checked there; 0: never (not even at start). */
  upstreamSyncIntervalMs: number;
  /** How long one upstream request may take. */
  upstreamTimeoutMs: number;
  /**
   * The proxy (/proxy/<pool>/…): keys tried per request, the largest request body, how long the
   * caller may take to send it, one attempt's time to answer (the wait for a connection included).
   */
  proxy: { maxAttempts: number; maxBodyBytes: number; bodyTimeoutMs: number; timeoutMs: number; accessLog: boolean };
  /** The alert engine: where its events go (ALERT_WEBHOOKS) and what it alerts on. */
  alerts: { webhooks: WebhookTarget[]; options: AlertEngineOptions };
  /** The longest time an upstream's Retry-After or a report may keep a key out. */
  maxRetryAfterSec: number;
  /**
   * Identifications pinned to the key that made them: how long a pin lasts, and how many a pool keeps
   * (oldest go first).
   */
  pins: { ttlMs: number; max: number };
}

/** One of REDIS_CLUSTER_NODES: `host:port`. */
function clusterNode(text: string): { host: string; port: number } {
  const m = /^([^\s:]+|\[[0-9a-f:]+\]):(\d{1,5})$/iu.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
    throw new ConfigError(`REDIS_CLUSTER_NODES: ${JSON.stringify(text)} is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/gu, ''), port: Number(m[2]) };
}

function webhooksOf(urls: string[]): WebhookTarget[] {
  try {
    return parseWebhooks(urls);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}

/** Reads and validates the server's environment. Throws ConfigError naming the variable. */
export function loadServerConfig(env: Record<string, string | undefined>): ServerConfig {
  const notices: string[] = [];
  // Coming from the Flask service: its port setting is honoured while PORT is not set.
  if (!env.PORT?.trim() && env.FLASK_RUN_PORT?.trim()) {
    env = { ...env, PORT: env.FLASK_RUN_PORT };
    notices.push(`PORT is not set: listening on FLASK_RUN_PORT (${env.PORT}), as the Flask service did`);
  }
  const e = parseEnv(envSchema, env);
  const open = e.API_TOKENS.length === 0;
  // Named apps (APPS_FILE) close the API too; start.ts checks the file holds one.
  if (open && !isLoopback(e.HOST) && !existsSync(resolve(e.APPS_FILE))) {
    throw new ConfigError(
      `API_TOKENS: required when HOST is not a loopback address (HOST is ${JSON.stringify(e.HOST)}); set at ` +
        `least one token, make an app (npm run keys -- app add), or bind to 127.0.0.1`,
    );
  }
  // pm2 exports its app settings to the environment; cluster mode shares nothing between workers.
  if (
    e.STATE_BACKEND === 'file' &&
    env.exec_mode === 'cluster_mode' &&
    env.instances !== undefined &&
    env.instances !== '1'
  ) {
    throw new ConfigError(
      `pm2 cluster mode (instances: ${env.instances}) is not supported with the file state store: each instance ` +
        `would count handouts on its own and overwrite the others' saves; set STATE_BACKEND=redis (with ` +
        `REDIS_URL) to run several instances, or run one`,
    );
  }
  const short = e.API_TOKENS.find((t) => t.length < 16);
  if (short !== undefined) throw new ConfigError('API_TOKENS: every token must be at least 16 characters');
  // An API token that is also the admin token would make every holder of it an admin.
  if (e.ADMIN_TOKEN !== undefined && e.API_TOKENS.includes(e.ADMIN_TOKEN))
    throw new ConfigError('ADMIN_TOKEN: must differ from every token in API_TOKENS');
  return {
    notices,
    host: e.HOST,
    port: e.PORT,
    keysDir: resolve(e.KEYS_DIR),
    stateFile: resolve(e.STATE_FILE),
    stateSaveIntervalMs: e.STATE_SAVE_INTERVAL_MS,
    apiTokens: e.API_TOKENS,
    adminToken: e.ADMIN_TOKEN ?? null,
    appsFile: resolve(e.APPS_FILE),
    auditFile: resolve(e.AUDIT_FILE),
    logLevel: e.LOG_LEVEL,
    logFile: resolve(e.LOG_FILE),
    stateBackend: e.STATE_BACKEND,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    redisClusterNodes: e.REDIS_CLUSTER_NODES.map(clusterNode),
    redisAllowVolatile: e.REDIS_ALLOW_VOLATILE,
    redisLeases: e.REDIS_LEASES,
    keyCipher: cipherFromEnv(env),
    upstreamSyncIntervalMs: e.UPSTREAM_SYNC_INTERVAL_MS,
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    alerts: {
      webhooks: webhooksOf(e.ALERT_WEBHOOKS),
      options: {
        minAvailable: e.ALERT_MIN_AVAILABLE,
        lowCredits: e.LOW_CREDITS_THRESHOLD,
        runsDryMinutes: e.ALERT_RUNS_DRY_MINUTES,
        syncFailingMs: 10 * 60_000,
        intervalMs: e.ALERT_CHECK_INTERVAL_MS,
        remindMs: e.ALERT_REMIND_HOURS * 3_600_000,
        dashboardUrl: e.DASHBOARD_URL ?? null,
      },
    },
    proxy: {
      maxAttempts: e.PROXY_MAX_ATTEMPTS,
      maxBodyBytes: e.PROXY_MAX_BODY_BYTES,
      bodyTimeoutMs: e.PROXY_BODY_TIMEOUT_MS,
      timeoutMs: e.PROXY_TIMEOUT_MS,
      accessLog: e.LOG_ACCESS,
    },
    maxRetryAfterSec: e.MAX_RETRY_AFTER_S,
    pins: { ttlMs: e.PIN_TTL_DAYS * 86_400_000, max: e.PIN_MAX },
    open,
  };
}

const positiveInt = z.number().int().positive();
const seconds = z.number().positive().finite();
const poolSchema = z
  .object({
    strategy: z.enum(['round-robin', 'fill-first', 'least-recently-used', 'random']),
    rotateEvery: positiveInt,
    limits: z
      .object({
        perMinute: positiveInt,
        perHour: positiveInt,
        perDay: positiveInt,
        perWeek: positiveInt,
        perMonth: positiveInt,
        total: positiveInt,
      })
      .partial()
      .strict(),
    poolPerMinute: positiveInt,
    maxFailures: positiveInt,
    failureWindow: seconds,
    maxBackoff: seconds,
    probeTimeout: seconds,
    resetTimezone: z.string().refine(isValidTimeZone, 'must be an IANA time zone name, e.g. America/Los_Angeles'),
    upstream: upstreamSchema,
    proxyRetryPost: z.boolean(),
  })
  .partial()
  .strict();

export type PoolsFileEntry = z.infer<typeof poolSchema>;

function toPolicy(entry: PoolsFileEntry, upstream: UpstreamConfig | null): PoolPolicy {
  return {
    // Kindwise tells each key's plan: its credit limits hold the key too, its counts follow the upstream's.
    upstreamLimits: upstream?.type === 'kindwise',
    strategy: entry.strategy ?? DEFAULT_POLICY.strategy,
    rotateEvery: entry.rotateEvery ?? DEFAULT_POLICY.rotateEvery,
    limits: entry.limits ?? {},
    poolPerMinute: entry.poolPerMinute ?? null,
    maxFailures: entry.maxFailures ?? DEFAULT_POLICY.maxFailures,
    failureWindowSec: entry.failureWindow ?? DEFAULT_POLICY.failureWindowSec,
    maxBackoffSec: entry.maxBackoff ?? DEFAULT_POLICY.maxBackoffSec,
    probeTimeoutSec: entry.probeTimeout ?? DEFAULT_POLICY.probeTimeoutSec,
    resetTimezone: entry.resetTimezone ?? DEFAULT_POLICY.resetTimezone,
  };
}

/**
 * What pools.json configures: each pool's policy, the upstream of each pool that has one, and the
 * pools whose proxied POSTs may be sent again after a 5xx or timeout.
 */
export interface PoolsConfig {
  policies: Map<string, PoolPolicy>;
  upstreams: Map<string, UpstreamConfig>;
  proxyRetryPost: Set<string>;
}

/** Validates the parsed contents of pools.json; errors name the file, the pool and the field. */
export function parsePoolsFile(raw: unknown, file: string): PoolsConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${file}: must be a JSON object mapping pool names to settings`);
  }
  const policies = new Map<string, PoolPolicy>();
  const entries = new Map<string, PoolsFileEntry>();
  for (const name of BUILTIN_POOLS) entries.set(name, {});
  for (const [name, entry] of Object.entries(raw)) {
    if (!POOL_NAME.test(name))
      throw new ConfigError(`${file}: pool ${JSON.stringify(name)}: name must match [a-z0-9_-]{1,64}`);
    if (RESERVED_POOL_NAMES.includes(name))
      throw new ConfigError(`${file}: pool ${JSON.stringify(name)}: name is reserved (GET /api/${name} is not a pool)`);
    const parsed = poolSchema.safeParse(entry ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '(settings)');
      const where =
        issue.code === 'unrecognized_keys'
          ? `${[...issue.path, ...issue.keys].join('.')}: unknown field`
          : `${field}: ${issue.message}`;
      throw new ConfigError(`${file}: pool ${name}: ${where}`);
    }
    entries.set(name, parsed.data);
  }
  const upstreams = new Map<string, UpstreamConfig>();
  const proxyRetryPost = new Set<string>();
  for (const [name, entry] of entries) {
    if (entry.proxyRetryPost) proxyRetryPost.add(name);
    const upstream = resolveUpstream(name, entry.upstream);
    if (upstream !== null && 'error' in upstream) throw new ConfigError(`${file}: pool ${name}: ${upstream.error}`);
    if (upstream !== null) upstreams.set(name, upstream);
    policies.set(name, toPolicy(entry, upstream));
  }
  return { policies, upstreams, proxyRetryPost };
}

/** Reads KEYS_DIR/pools.json if present; without it only the built-in pools exist, with default policy. */
export async function loadPools(keysDir: string): Promise<PoolsConfig> {
  const file = join(keysDir, 'pools.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return parsePoolsFile({}, file);
    throw new ConfigError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return parsePoolsFile(raw, file);
}
