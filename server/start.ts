import type { Server } from 'node:http';
import { createApp } from './http/app.js';
import { loadPools, type ServerConfig } from './config.js';
import { createMetrics } from './http/metrics.js';
import type { Logger } from '../shared/logger.js';
import { PoolRegistry, type Clock } from './pools/registry.js';
import { createSaver, type Saver } from './state/saver.js';
import { createShutdown } from './shutdown.js';
import type { Redis } from 'ioredis';
import { StateUnavailableError } from './http/errors.js';
import { RedisPool, withPoolScript } from './redis/pool.js';
import type { StateStore } from './state/store.js';

/** How often key files are checked for edits. */
export const KEY_FILE_POLL_MS = 500;

export interface RunningServer {
  server: Server;
  port: number;
  url: string;
  registry: PoolRegistry;
  /** Saves the state file (file backend); null with Redis, which keeps state itself. */
  saver: Saver | null;
  /** Graceful stop: close, final save. Idempotent. */
  stop(reason?: string): Promise<void>;
}

export interface StartDeps {
  logger: Logger;
  /** File backend: where the state file lives. */
  store?: StateStore;
  /** Redis backend: a connected (or connecting) client and the key prefix. */
  redis?: { client: Redis; prefix: string };
  clock?: Clock;
  rng?: () => number;
  version?: string;
  keyFilePollMs?: number;
}

/**
 * Wires and starts a key server: pools from pools.json and key files, state from the store,
 * the app listening on config.host:config.port. Touches no process-wide state, so tests run it
 * in-process with a fake clock and index.ts adds env, signals and exit around it.
 */
export async function startKeywarden(config: ServerConfig, deps: StartDeps): Promise<RunningServer> {
  const { logger, store, redis } = deps;
  if (!store === !redis) throw new Error('startKeywarden: give exactly one of store (file backend) or redis');
  const clock = deps.clock ?? Date.now;
  const policies = await loadPools(config.keysDir);
  const scripted = redis ? withPoolScript(redis.client) : null;
  const registry = new PoolRegistry({
    keysDir: config.keysDir,
    policies,
    clock,
    logger,
    rng: deps.rng,
    createPool: scripted ? (name, policy, options) => new RedisPool(name, policy, scripted, redis!.prefix, options) : undefined,
  });
  if (redis && redis.client.status !== 'ready') {
    // Give a starting connection a moment, so a healthy start does not log a failed first sync.
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        redis.client.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, 3000);
      redis.client.once('ready', done);
    });
  }
  try {
    await registry.loadAllKeyFiles();
  } catch (err) {
    if (!(err instanceof StateUnavailableError)) throw err;
    // Redis is down at start: serve 503s and apply the key files once it answers.
    logger.error(`state: ${err.detail}; key files apply once Redis answers`);
  }

  const metrics = createMetrics(registry);
  let saver: Saver | null = null;
  let closing = false;
  if (store) {
    const loaded = await store.load();
    if (loaded.kind === 'loaded') {
      for (const d of loaded.dropped) logger.warn(`state: dropped an unreadable entry (${d})`);
      registry.restore(loaded.state.pools, loaded.state.seq);
      logger.info(`state: resumed from ${store.description} (saved ${new Date(loaded.state.savedAt).toISOString()})`);
    } else if (loaded.kind === 'quarantined') {
      logger.error(`state: ${store.description} is ${loaded.error}; moved it to ${loaded.movedTo} and starting fresh`);
    } else {
      logger.info(`state: nothing saved in ${store.description} yet; starting fresh`);
    }
    saver = createSaver({ registry, store, intervalMs: config.stateSaveIntervalMs, logger, onSave: metrics.stateSave });
  } else {
    const client = redis!.client;
    let down = client.status !== 'ready';
    const lost = (why: string) => {
      if (closing) return;
      if (!down) logger.error(`state: Redis connection lost (${why}); answering 503 state_unavailable until it is back`);
      down = true;
    };
    client.on('error', (err: Error) => lost(err.message));
    client.on('close', () => lost('connection closed'));
    client.on('ready', () => {
      if (down) logger.info('state: Redis is back; resyncing key files');
      down = false;
      // Membership may have been lost (a Redis without persistence) or missed while down.
      void (async () => {
        for (const name of registry.names()) await registry.loadKeyFile(name, true).catch((err: Error) => logger.error(`state: resync of ${name} failed: ${err.message}`));
      })();
    });
    logger.info(`state: Redis backend (${redactUrl(config.redisUrl)}, prefix ${redis!.prefix})`);
  }
  const health = () => (redis && redis.client.status !== 'ready' ? { ok: false as const, reason: `state backend (Redis) is ${redis.client.status}` } : { ok: true as const });

  const app = createApp({ registry, logger, clock, metrics, health, apiTokens: config.apiTokens, adminToken: config.adminToken, version: deps.version ?? '0.0.0', startedAt: clock() });
  if (config.open) logger.warn(`API_TOKENS is empty: /api/* is open to anyone who can reach ${config.host} (allowed on loopback only)`);

  const server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.keepAliveTimeout = 65_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  registry.watchKeyFiles(deps.keyFilePollMs ?? KEY_FILE_POLL_MS);
  saver?.start();
  logger.info(`keywarden listening on ${url} (pools: ${registry.names().join(', ')})`);

  const shutdown = createShutdown({ server, registry, saver, logger, closeState: redis
      ? async () => {
          closing = true;
          redis.client.disconnect();
        }
      : undefined });
  return { server, port, url, registry, saver, stop: (reason = 'stop') => shutdown(reason) };
}

/** A Redis URL without its password, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^@/]*)@/u, (_m, auth: string) => `//${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}
