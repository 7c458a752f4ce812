import { z } from 'zod';
import { boolVar, ConfigError, intVar, logLevelVar, parseEnv } from '../shared/env.js';

const snowflake = z.string().regex(/^\d{17,20}$/u, 'must be a Discord channel id (17-20 digits)');

const envSchema = z.object({
  DISCORD_BOT_TOKEN: z.string({ error: 'is required: the bot token from the Discord developer portal' }),
  STATS_API: z
    .url({ protocol: /^https?$/u, error: 'must be an http(s) URL' })
    .default('http://127.0.0.1:5000/api/stats'),
  STATS_TOKEN: z.string().optional(),
  STATS_POLL_INTERVAL_MS: intVar(300_000, 100, 86_400_000),
  STATS_TIMEOUT_MS: intVar(10_000, 100, 120_000),
  BOT_PREFIX: z.string().max(10, 'must be at most 10 characters').default('!'),
  BOT_PREFIX_COMMANDS: boolVar(true),
  ALERT_CHANNEL_ID: snowflake.optional(),
  LOW_KEYS_THRESHOLD: intVar(1, 0, 1_000_000),
  DASHBOARD_URL: z.url({ protocol: /^https?$/u, error: 'must be an http(s) URL' }).optional(),
  DISCORD_API_URL: z.url({ protocol: /^https?$/u, error: 'must be an http(s) URL' }).default('https://discord.com/api'),
  LOG_LEVEL: logLevelVar,
  BOT_LOG_FILE: z.string().default('logs/bot.log'),
});

export interface BotConfig {
  token: string;
  statsApi: string;
  statsToken: string | null;
  pollIntervalMs: number;
  statsTimeoutMs: number;
  prefix: string;
  /** `!stats` on: the bot reads messages, which takes the privileged Message Content intent. */
  prefixCommands: boolean;
  alertChannelId: string | null;
  lowKeysThreshold: number;
  discordApiUrl: string;
  /** The key server's dashboard, linked from the !stats embeds; null: no link. */
  dashboardUrl: string | null;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFile: string;
}

/** Reads and validates the bot's environment; a ConfigError names the variable. */
export function loadBotConfig(env: Record<string, string | undefined>): BotConfig {
  const e = parseEnv(envSchema, env);
  if (/\s/u.test(e.DISCORD_BOT_TOKEN)) throw new ConfigError('DISCORD_BOT_TOKEN: must not contain whitespace');
  return {
    token: e.DISCORD_BOT_TOKEN,
    statsApi: e.STATS_API,
    statsToken: e.STATS_TOKEN ?? null,
    pollIntervalMs: e.STATS_POLL_INTERVAL_MS,
    statsTimeoutMs: e.STATS_TIMEOUT_MS,
    prefix: e.BOT_PREFIX,
    prefixCommands: e.BOT_PREFIX_COMMANDS,
    alertChannelId: e.ALERT_CHANNEL_ID ?? null,
    lowKeysThreshold: e.LOW_KEYS_THRESHOLD,
    discordApiUrl: e.DISCORD_API_URL.replace(/\/+$/u, ''),
    dashboardUrl: e.DASHBOARD_URL ?? null,
    logLevel: e.LOG_LEVEL,
    logFile: e.BOT_LOG_FILE,
  };
}
