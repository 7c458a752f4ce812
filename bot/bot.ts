import { Client, Events, GatewayIntentBits, Routes, type Interaction, type Message } from 'discord.js';
import type { Logger } from '../shared/logger.js';
import { INITIAL_ALERT_STATE, stepAlerts, type AlertState } from './alerts.js';
import { createStatsClient } from './api.js';
import { canAnswerFromCache, isStatsMessage, statsCommand, statsReply } from './commands/stats.js';
import type { BotConfig } from './config.js';
import { alertEmbed } from './embeds.js';
import { createMonitor, type Monitor } from './monitor.js';
import { presenceFor } from './presence.js';

export interface RunningBot {
  client: Client;
  monitor: Monitor;
  /** Logs in; rejects when Discord refuses (bad token, unreachable). */
  login(): Promise<void>;
  /** Stops polling and destroys the client. */
  stop(): Promise<void>;
}

/**
 * Wires the bot: a discord.js client (REST and gateway discovery at config.discordApiUrl), the
 * stats monitor, presence, alerts and the stats commands. Touches no process-wide state.
 */
/**
 * The gateway intents the bot asks for: guilds for /stats; the messages and their content
 * (privileged: Discord refuses the login with 4014 unless the portal enables it) only for !stats.
 */
export function intentsFor(config: Pick<BotConfig, 'prefixCommands'>): GatewayIntentBits[] {
  return config.prefixCommands
    ? [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent]
    : [GatewayIntentBits.Guilds];
}

export function createBot(config: BotConfig, deps: { logger: Logger; clock?: () => number }): RunningBot {
  const { logger } = deps;
  const clock = deps.clock ?? Date.now;
  const client = new Client({
    intents: intentsFor(config),
    rest: { api: config.discordApiUrl },
  });
  const monitor = createMonitor({
    client: createStatsClient(config.statsApi, config.statsToken, { timeoutMs: config.statsTimeoutMs, clock }),
    intervalMs: config.pollIntervalMs,
    clock,
  });

  let alertState: AlertState = INITIAL_ALERT_STATE;
  let seenBeforeThisPoll: number | null = null;
  monitor.onResult((r) => {
    if (client.isReady()) client.user.setPresence(presenceFor(r, config.lowKeysThreshold));
    if (r.ok) logger.debug(`stats: ${r.stats.pools.map((p) => `${p.name} ${p.available}/${p.total}`).join(', ')}`);
    else logger.warn(`stats: key server unreachable (${r.error})`);
    const { state, alerts } = stepAlerts(alertState, r, seenBeforeThisPoll);
    alertState = state;
    seenBeforeThisPoll = monitor.lastSeenAt;
    for (const alert of alerts) {
      logger.info(
        `alert: ${alert.kind === 'server_alert' ? `${alert.alert.event} ${alert.phase}` : alert.kind}` +
          (alert.kind === 'server_alert' && alert.alert.pool ? ` ${alert.alert.pool}` : ''),
      );
      if (!config.alertChannelId) continue;
      client.rest
        .post(Routes.channelMessages(config.alertChannelId), { body: { embeds: [alertEmbed(alert, r.at)] } })
        .catch((err: unknown) =>
          logger.error(`alert: posting to channel ${config.alertChannelId} failed: ${(err as Error).message}`),
        );
    }
  });

  client.once(Events.ClientReady, (c) => {
    logger.info(`discord: logged in as ${c.user.tag}; polling ${config.statsApi} every ${config.pollIntervalMs} ms`);
    c.application.commands
      .set([statsCommand])
      .then(() => logger.info('discord: /stats registered'))
      .catch((err: unknown) => logger.error(`discord: registering /stats failed: ${(err as Error).message}`));
    monitor.start();
  });

  client.on(Events.MessageCreate, (message: Message) => {
    if (!config.prefixCommands) return;
    if (message.author.bot || !isStatsMessage(message.content, config.prefix)) return;
    statsReply(monitor, config.lowKeysThreshold, config.dashboardUrl)
      .then((reply) => message.reply({ ...reply, allowedMentions: { repliedUser: false } }))
      .catch((err: unknown) =>
        logger.error(`discord: answering ${config.prefix}stats failed: ${(err as Error).message}`),
      );
  });

  client.on(Events.InteractionCreate, (interaction: Interaction) => {
    if (!interaction.isChatInputCommand() || interaction.commandName !== statsCommand.name) return;
    const answer = async () => {
      if (canAnswerFromCache(monitor, clock())) {
        await interaction.reply(await statsReply(monitor, config.lowKeysThreshold, config.dashboardUrl));
        return;
      }
      // A fresh poll may outlast Discord's 3 s window for a first response: defer, then edit.
      await interaction.deferReply();
      await interaction.editReply(await statsReply(monitor, config.lowKeysThreshold, config.dashboardUrl));
    };
    answer().catch((err: unknown) => logger.error(`discord: answering /stats failed: ${(err as Error).message}`));
  });

  client.on(Events.Error, (err) => logger.error(`discord: ${err.message}`));
  client.on(Events.Warn, (msg) => logger.warn(`discord: ${msg}`));
  client.on(Events.ShardDisconnect, (_e, id) => logger.warn(`discord: shard ${id} disconnected`));
  client.on(Events.ShardReconnecting, (id) => logger.info(`discord: shard ${id} reconnecting`));

  return {
    client,
    monitor,
    async login() {
      await client.login(config.token);
    },
    async stop() {
      monitor.stop();
      await client.destroy();
    },
  };
}
