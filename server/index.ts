import { readFileSync } from 'node:fs';
import dotenv from 'dotenv';
import { Redis } from 'ioredis';
import { ConfigError } from '../shared/env.js';
import { loadServerConfig } from './config.js';
import { closeLogger, createLogger, ensureLogFolder } from '../shared/logger.js';
import { RedisBackend } from './redis/backend.js';
import { startKeywarden } from './start.js';
import { FileBackend } from './state/file-backend.js';
import { FileStore, StateFileError } from './state/file.js';

function packageVersion(): string {
  // Works from both server/ (tsx) and dist/server/ (compiled).
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'keywarden' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0';
}

async function main(): Promise<void> {
  dotenv.config({ quiet: true }); // real environment variables win over .env
  const config = loadServerConfig(process.env);
  ensureLogFolder('LOG_FILE', config.logFile);
  const logger = createLogger({ level: config.logLevel, file: config.logFile });
  const backend =
    config.stateBackend === 'redis'
      ? new RedisBackend(
          // Fail fast while Redis is down (503 state_unavailable, never a hanging request) and reconnect by itself.
          new Redis(config.redisUrl, {
            enableOfflineQueue: false,
            maxRetriesPerRequest: 1,
            // Only for a Redis that hangs while connected; a lost connection fails at once (no offline queue).
            // Generous, because a reply lost to a timeout is a handout counted but never delivered.
            commandTimeout: 5000,
            connectTimeout: 2000,
            retryStrategy: (times) => Math.min(100 * times, 2000),
          }),
          config.redisPrefix,
          { logger, url: config.redisUrl },
        )
      : new FileBackend(new FileStore(config.stateFile), { clock: Date.now, logger, intervalMs: config.stateSaveIntervalMs });
  const running = await startKeywarden(config, { logger, backend, version: packageVersion() });
  process.send?.('ready'); // pm2 wait_ready

  const stop = (reason: string) => {
    running
      .stop(reason)
      .then(() => closeLogger(logger))
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        console.error(`keywarden: shutdown failed: ${(err as Error).message}`);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // pm2 sends 'shutdown' as a message where signals are unavailable (and with shutdown_with_message).
  process.on('message', (msg) => {
    if (msg === 'shutdown') stop('pm2 shutdown message');
  });
}

main().catch((err: unknown) => {
  const known = err instanceof ConfigError || err instanceof StateFileError;
  console.error(`keywarden: ${known ? '' : 'failed to start: '}${(err as Error).message}`);
  process.exit(1);
});
