import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GatewayIntentBits } from 'discord.js';
import { intentsFor } from '../../bot/bot.js';
import { loadBotConfig } from '../../bot/config.js';
import { ConfigError } from '../../shared/env.js';

describe('bot environment', () => {
  it('has documented defaults', () => {
    const c = loadBotConfig({ DISCORD_BOT_TOKEN: 'abc.def.ghi' });
    assert.deepEqual(
      { ...c, logFile: undefined },
      {
        token: 'abc.def.ghi',
        statsApi: 'http://127.0.0.1:5000/api/stats',
        statsToken: null,
        pollIntervalMs: 300_000,
        statsTimeoutMs: 10_000,
        prefix: '!',
        prefixCommands: true,
        alertChannelId: null,
        lowKeysThreshold: 1,
        dashboardUrl: null,
        discordApiUrl: 'https://discord.com/api',
        logLevel: 'info',
        logFile: undefined,
      },
    );
  });

  it('asks for the privileged Message Content intent only while !stats is on', () => {
    const on = loadBotConfig({ DISCORD_BOT_TOKEN: 'abc.def.ghi' });
    const off = loadBotConfig({ DISCORD_BOT_TOKEN: 'abc.def.ghi', BOT_PREFIX_COMMANDS: 'false' });
    assert.ok(intentsFor(on).includes(GatewayIntentBits.MessageContent));
    assert.deepEqual(intentsFor(off), [GatewayIntentBits.Guilds]);
  });

  it('names the variable; never echoes a token', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{}, /^DISCORD_BOT_TOKEN: is required/u],
      [{ DISCORD_BOT_TOKEN: 'a b' }, /^DISCORD_BOT_TOKEN: must not contain whitespace$/u],
      [{ DISCORD_BOT_TOKEN: 't', STATS_API: 'ftp://x' }, /^STATS_API: must be an http\(s\) URL/u],
      [{ DISCORD_BOT_TOKEN: 't', ALERT_CHANNEL_ID: 'general' }, /^ALERT_CHANNEL_ID: must be a Discord channel id/u],
      [{ DISCORD_BOT_TOKEN: 't', LOW_KEYS_THRESHOLD: 'few' }, /^LOW_KEYS_THRESHOLD: must be a whole number/u],
      [
        { DISCORD_BOT_TOKEN: 't', STATS_TOKEN: '', STATS_POLL_INTERVAL_MS: '5' },
        /^STATS_POLL_INTERVAL_MS: must be at least 100/u,
      ],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => loadBotConfig(env),
        (e: unknown) => e instanceof ConfigError && message.test(e.message) && !e.message.includes('a b'),
        JSON.stringify(env),
      );
    }
  });
});
