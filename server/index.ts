import { readFileSync } from 'node:fs';
import dotenv from 'dotenv';
import { CONFIG_EXIT_CODE, ConfigError } from '../shared/env.js';
import { loadServerConfig } from './config.js';
import { closeLogger, createLogger, ensureLogFolder, type Logger } from '../shared/logger.js';
import { startKeywarden, type RunningServer } from './start.js';
import { FileBackend } from './state/file-backend.js';
import { realFilePath } from './fs/real-path.js';
import { FileStore, StateFileError } from './state/file.js';
import { processProbe, StateLock, StateLockedError } from './state/lock.js';

function packageVersion(): string {
  // Works from both server/ (tsx) and dist/server/ (compiled).
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'keywarden' && pkg.version) return pkg.version;
    } catch {
      // try the next candidate
    }
  }
  return '0.0.0';
}

/** STATE_FILE through its links (fs/real-path.ts); one leading nowhere a file can be made is a config error. */
async function realStateFile(path: string): Promise<string> {
  try {
    return await realFilePath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`STATE_FILE: ${path} leads nowhere a state file can be made (${code})`);
  }
}

/** The server's logger once made: a start that fails after it flushes its lines before the exit. */
let startLogger: Logger | null = null;

async function main(): Promise<void> {
  dotenv.config({ quiet: true }); // real environment variables win over .env
  const config = loadServerConfig(process.env);
  ensureLogFolder('LOG_FILE', config.logFile);
  const logger = createLogger({ level: config.logLevel, file: config.logFile });
  startLogger = logger;
  const stateFile = await realStateFile(config.stateFile);
  const backend =
    config.stateBackend === 'redis'
      ? (await import('./redis/connect.js')).connectRedisBackend({
          url: config.redisUrl,
          clusterNodes: config.redisClusterNodes,
          prefix: config.redisPrefix,
          allowVolatile: config.redisAllowVolatile,
          leases: config.redisLeases,
          stateFile,
          logger,
        })
      : new FileBackend(new FileStore(stateFile), {
          clock: Date.now,
          logger,
          intervalMs: config.stateSaveIntervalMs,
          lock: new StateLock(stateFile, processProbe(process.pid, process.kill)),
        });
  // Signals are handled from the start: one that arrives while the server starts stops it as soon
  // as it is up (with the final save), instead of killing it the default way in between.
  let running: RunningServer | null = null;
  let stopAsked: string | null = null;
  const stop = (reason: string) => {
    if (!running) {
      stopAsked ??= reason;
      return;
    }
    running
      .stop(reason)
      .then(() => closeLogger(logger))
      .then(() => process.exit(0))
      .catch(async (err: unknown) => {
        await closeLogger(logger); // what it logged on the way (the failed save) is written first
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

  running = await startKeywarden(config, { logger, backend, version: packageVersion() });
  process.send?.('ready'); // pm2 wait_ready
  if (stopAsked) stop(stopAsked);
}

main().catch(async (err: unknown) => {
  // Known: a start that only a change of configuration can fix (pm2 then stops instead of restarting).
  const known = err instanceof ConfigError || err instanceof StateFileError || err instanceof StateLockedError;
  if (startLogger) await closeLogger(startLogger); // its lines (written asynchronously) before the last one
  console.error(`keywarden: ${known ? '' : 'failed to start: '}${(err as Error).message}`);
  process.exit(known ? CONFIG_EXIT_CODE : 1);
});
