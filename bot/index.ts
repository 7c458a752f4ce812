import dotenv from 'dotenv';
import { CONFIG_EXIT_CODE, ConfigError } from '../shared/env.js';
import { closeLogger, createLogger, ensureLogFolder } from '../shared/logger.js';
import { createBot } from './bot.js';
import { loadBotConfig } from './config.js';

async function main(): Promise<void> {
  dotenv.config({ quiet: true }); // real environment variables win over .env
  const config = loadBotConfig(process.env);
  ensureLogFolder('BOT_LOG_FILE', config.logFile);
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
      .catch(() => closeLogger(logger).finally(() => process.exit(1)));
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
    const code = (err as { code?: string }).code;
    const hint =
      code === 'DisallowedIntents'
        ? ' (enable the Message Content intent in the developer portal, or set BOT_PREFIX_COMMANDS=false)'
        : '';
    logger.error(`bot: could not log in to Discord at ${config.discordApiUrl}: ${(err as Error).message}${hint}`);
    await closeLogger(logger);
    // A token or intents Discord refuses will be refused again: stop (pm2 too) until they are changed.
    process.exit(code === 'TokenInvalid' || code === 'DisallowedIntents' ? CONFIG_EXIT_CODE : 1);
  }
  process.send?.('ready');
}

main().catch((err: unknown) => {
  const known = err instanceof ConfigError;
  console.error(`keywarden-bot: ${known ? '' : 'failed to start: '}${(err as Error).message}`);
  process.exit(known ? CONFIG_EXIT_CODE : 1);
});
