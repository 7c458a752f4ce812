import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import dotenv from 'dotenv';
import { ConfigError } from '../shared/env.js';
import { closeLogger, createLogger } from '../shared/logger.js';
import { createBot } from './bot.js';
import { loadBotConfig } from './config.js';

async function main(): Promise<void> {
  dotenv.config({ quiet: true }); // real environment variables win over .env
  const config = loadBotConfig(process.env);
  try {
    mkdirSync(dirname(config.logFile), { recursive: true });
  } catch (err) {
    throw new ConfigError(`BOT_LOG_FILE: cannot create the folder for ${config.logFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const logger = createLogger({ level: config.logLevel, file: config.logFile });
  const bot = createBot(config, { logger });

  let stopping = false;
  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`bot: shutting down (${reason})`);
    bot
      .stop()
      .then(() => closeLogger(logger))
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('message', (msg) => {
    if (msg === 'shutdown') stop('pm2 shutdown message');
  });

  try {
    await bot.login();
  } catch (err) {
    // discord.js errors never carry the token; keep the line short and clear.
    logger.error(`bot: could not log in to Discord at ${config.discordApiUrl}: ${(err as Error).message}`);
    await closeLogger(logger);
    process.exit(1);
  }
  process.send?.('ready');
}

main().catch((err: unknown) => {
  const known = err instanceof ConfigError;
  console.error(`keywarden-bot: ${known ? '' : 'failed to start: '}${(err as Error).message}`);
  process.exit(1);
});
