import type { Server } from 'node:http';
import { createApp } from './app.js';
import { loadPools, type ServerConfig } from './config.js';
import { createMetrics } from './metrics.js';
import type { Logger } from '../shared/logger.js';
import { PoolRegistry, type Clock } from './registry.js';
import { createSaver, type Saver } from './saver.js';
import { createShutdown } from './shutdown.js';
import type { StateStore } from './store/store.js';

/** How often key files are checked for edits. */
export const KEY_FILE_POLL_MS = 500;

export interface RunningServer {
  server: Server;
  port: number;
  url: string;
  registry: PoolRegistry;
  saver: Saver;
  /** Graceful stop: close, final save. Idempotent. */
  stop(reason?: string): Promise<void>;
}

export interface StartDeps {
  logger: Logger;
  store: StateStore;
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
  const { logger, store } = deps;
  const clock = deps.clock ?? Date.now;
  const policies = await loadPools(config.keysDir);
  const registry = new PoolRegistry({ keysDir: config.keysDir, policies, clock, logger, rng: deps.rng });
  await registry.loadAllKeyFiles();

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

  const metrics = createMetrics(registry);
  const saver = createSaver({ registry, store, intervalMs: config.stateSaveIntervalMs, logger, onSave: metrics.stateSave });
  const app = createApp({ registry, logger, clock, metrics, apiTokens: config.apiTokens, adminToken: config.adminToken, version: deps.version ?? '0.0.0', startedAt: clock() });
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
  saver.start();
  logger.info(`keywarden listening on ${url} (pools: ${registry.names().join(', ')})`);

  const shutdown = createShutdown({ server, registry, saver, logger });
  return { server, port, url, registry, saver, stop: (reason = 'stop') => shutdown(reason) };
}
