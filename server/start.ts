import type { Server } from 'node:http';
import { isLoopback, loadPools, type ServerConfig } from './config.js';
import { ConfigError } from '../shared/env.js';
import { AppsFile, AppsFileError } from './apps/file.js';
import { AppTraffic } from './apps/traffic.js';
import { AuditLog } from './audit/log.js';
import { AlertEngine } from './alerts/engine.js';
import { WebhookSender } from './alerts/webhooks.js';
import { AppOperations } from './ops/apps.js';
import { createApp } from './http/app.js';
import { answerClientErrorsAsJson } from './http/client-errors.js';
import { createMetrics } from './http/metrics.js';
import type { Logger } from '../shared/logger.js';
import { join } from 'node:path';
import { KeyFiles } from './keys/key-files.js';
import { PoolsFile } from './keys/pools-file.js';
import { logPoolEvent } from './pool-log.js';
import { PoolRegistry, type Clock } from './pools/registry.js';
import { createShutdown } from './shutdown.js';
import { StateUnavailableError } from './pools/contract.js';
import type { StateBackend } from './state/backend.js';
import { UpstreamAgents } from './upstream/agents.js';
import { UsageChecker } from './upstream/checker.js';
import { usageUpstreams } from './upstream/config.js';
import { RefusalJudge } from './upstream/refusals.js';
import { UpstreamSync } from './upstream/sync.js';
import { createUsageFetcher, type UsageFetcher } from './upstream/usage-client.js';

/** How often key files are checked for edits. */
export const KEY_FILE_POLL_MS = 500;

export interface RunningServer {
  server: Server;
  port: number;
  url: string;
  registry: PoolRegistry;
  /** Graceful stop: close, final save. Idempotent; rejects when the final save failed. */
  stop(reason?: string): Promise<void>;
}

export interface StartDeps {
  logger: Logger;
  /** Where state lives: a FileBackend or a RedisBackend, chosen by the composition root. */
  backend: StateBackend;
  clock?: Clock;
  rng?: () => number;
  version?: string;
  keyFilePollMs?: number;
  /** Asks an upstream about a key (default: usage_info over undici, UPSTREAM_TIMEOUT_MS). */
  fetchUsage?: UsageFetcher;
}

/**
 * Wires and starts a key server: pools from pools.json and key files, state from the backend,
 * the app listening on config.host:config.port. Touches no process-wide state, so tests run it
 * in-process with a fake clock and index.ts adds env, signals and exit around it.
 */
export async function startKeywarden(config: ServerConfig, deps: StartDeps): Promise<RunningServer> {
  const { logger, backend } = deps;
  const clock = deps.clock ?? Date.now;
  for (const notice of config.notices) logger.warn(notice);
  const { policies, upstreams, proxyRetryPost } = await loadPools(config.keysDir);
  const apps = new AppsFile(config.appsFile, logger);
  try {
    await apps.load();
  } catch (err) {
    throw err instanceof AppsFileError ? new ConfigError(`APPS_FILE: ${err.message}`) : err;
  }
  const adminIsAppToken = config.adminToken !== null && apps.resolve(config.adminToken, clock()).kind !== 'none';
  if (adminIsAppToken || (config.open && apps.apps.length === 0 && !isLoopback(config.host))) {
    throw new ConfigError(
      adminIsAppToken
        ? 'ADMIN_TOKEN: must differ from every app token (make the app an admin instead: app update <name> --admin)'
        : `API_TOKENS: required when HOST is not a loopback address and ${config.appsFile} holds no app`,
    );
  }

  // The alert engine reads the registry, which is made first; the registry's events poke it.
  let alerts: AlertEngine | null = null;
  const registry = new PoolRegistry({
    policies,
    clock,
    keyFilePath: (name) => join(config.keysDir, `${name}.txt`),
    // The pools' events go to the log (turn-taking rotations only at debug: winston's check costs on every handout).
    onEvent: (e) => {
      logPoolEvent(logger, e);
      if (e.type === 'key_out' && e.status === 'invalid') alerts?.poke(); // news: look now, not at the next check
    },
    traceRotations: logger.isDebugEnabled(),
    rng: deps.rng,
    createPool: backend.createPool.bind(backend),
    replacePool: backend.replacePool.bind(backend),
    reserve: backend.reserve?.bind(backend),
    pinLimits: config.pins,
    maxRetryAfterSec: config.maxRetryAfterSec,
  });
  const keyFiles = new KeyFiles({ keysDir: config.keysDir, registry, logger, cipher: config.keyCipher });
  await backend.open();
  const synced = usageUpstreams(upstreams);
  const traffic = new AppTraffic();
  const metrics = createMetrics(registry, {
    upstreamPools: [...synced.keys()],
    traffic,
    activeAlerts: () => alerts?.list().length ?? 0,
  });
  const agents = new UpstreamAgents();
  const checker = new UsageChecker({
    upstreams: synced,
    fetchUsage: deps.fetchUsage ?? createUsageFetcher(agents, config.upstreamTimeoutMs),
    clock,
    onCheck: metrics.upstreamCheck,
    servedOf: (pool, keyId) => registry.servedTotal(pool, keyId),
  });
  const sync = new UpstreamSync({
    registry,
    checker,
    logger,
    intervalMs: config.upstreamSyncIntervalMs,
    claim: (job, ttlMs) => backend.claim(job, ttlMs),
  });
  try {
    try {
      await keyFiles.loadAll();
    } catch (err) {
      if (!(err instanceof StateUnavailableError)) throw err;
      // The backend is down at start: serve 503s and apply the key files once it answers.
      logger.error(`state: ${err.detail}; key files apply once the state backend answers`);
    }
    const reapplyKeyFiles = async () => {
      for (const name of registry.names())
        await keyFiles
          .load(name, true)
          .catch((err: Error) => logger.error(`state: resync of ${name} failed: ${err.message}`));
    };
    await backend.resume({
      reapplyKeyFiles,
      serving: true,
      onSave: (seconds, ok) => {
        metrics.stateSave(seconds, ok);
        alerts?.saveResult(ok, clock());
      },
    });
  } catch (err) {
    await backend.release?.(); // a start that failed leaves no lock behind
    throw err;
  }

  const appOps = new AppOperations({ apps, registry, traffic, clock });
  const webhooks = new WebhookSender(config.alerts.webhooks, { logger, metrics: metrics.webhooks });
  alerts = new AlertEngine({
    registry,
    apps: () => appOps.list(),
    claim: (job, ttlMs) => backend.claim(job, ttlMs),
    send: (e) => webhooks.send(e),
    logger,
    clock,
    options: config.alerts.options,
  });
  const app = createApp({
    alerts,
    apps,
    traffic,
    audit: new AuditLog(config.auditFile),
    registry,
    keyFiles,
    logger,
    clock,
    metrics,
    health: () => backend.health(),
    apiTokens: config.apiTokens,
    adminToken: config.adminToken,
    version: deps.version ?? '0.0.0',
    startedAt: clock(),
    upstream: sync,
    proxy: {
      upstreams,
      retryPost: proxyRetryPost,
      refusals: new RefusalJudge({ registry, checker, logger, clock }),
      agents,
      maxRetryAfterSec: config.maxRetryAfterSec,
      ...config.proxy,
    },
  });
  if (config.open)
    logger.warn(
      `API_TOKENS is empty: /api/* is open to anyone who can reach ${config.host} (allowed on loopback only)`,
    );

  const server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.keepAliveTimeout = 65_000;
  answerClientErrorsAsJson(server);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  keyFiles.watch(deps.keyFilePollMs ?? KEY_FILE_POLL_MS);
  const poolsFile = new PoolsFile({
    keysDir: config.keysDir,
    registry,
    logger,
    current: { policies, upstreams, proxyRetryPost },
    onUpstream: (name, upstream) => {
      const kindwise = usageUpstreams(new Map(upstream ? [[name, upstream]] : [])).get(name);
      if (kindwise) synced.set(name, kindwise);
      else synced.delete(name);
    },
  });
  await poolsFile.watch(deps.keyFilePollMs ?? KEY_FILE_POLL_MS);
  apps.watch();
  logger.info(`keywarden listening on ${url} (pools: ${registry.names().join(', ')})`);
  if (synced.size > 0) {
    const where = [...synced].map(([name, u]) => `${name} -> ${u.origin}`).join(', ');
    logger.info(
      config.upstreamSyncIntervalMs > 0
        ? `upstream sync every ${config.upstreamSyncIntervalMs / 1000}s: ${where}`
        : `upstream sync off (UPSTREAM_SYNC_INTERVAL_MS=0); checks on demand: ${where}`,
    );
  }
  sync.start();
  alerts.start();

  const upstream = {
    async stop() {
      apps.stop();
      await poolsFile.stop();
      alerts?.stop();
      webhooks.stop();
      const stopped = sync.stop();
      await agents.destroy();
      await stopped;
    },
  };
  const shutdown = createShutdown({ server, keyFiles, backend, logger, upstream });
  return { server, port, url, registry, stop: (reason = 'stop') => shutdown(reason) };
}
