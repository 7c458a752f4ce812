import type { APIEmbed, RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import { statsEmbeds, unreachableEmbed } from '../embeds.js';
import type { Monitor } from '../monitor.js';

/** Replies use the cached poll when it is younger than this, else poll afresh. */
export const FRESH_MS = 30_000;

/** The `/stats` slash command, registered at start. */
export const statsCommand: RESTPostAPIChatInputApplicationCommandsJSONBody = {
  name: 'stats',
  description: 'Key pool availability: keys available, current key, keys out and when they return',
};

/** True when a message is the prefix command, e.g. `!stats` (case-insensitive, extra words ignored). */
export function isStatsMessage(content: string, prefix: string): boolean {
  const text = content.trim().toLowerCase();
  const cmd = `${prefix}stats`.toLowerCase();
  return text === cmd || text.startsWith(`${cmd} `);
}

/** True when a reply can be built from cache without waiting on the key server. */
export function canAnswerFromCache(monitor: Monitor, now: number): boolean {
  return monitor.last !== null && now - monitor.last.at < FRESH_MS;
}

/** The embeds for `!stats` and `/stats`: the pools, or a red "unreachable" embed; never silence. */
export async function statsReply(
  monitor: Monitor,
  threshold: number,
  dashboardUrl: string | null = null,
): Promise<{ embeds: APIEmbed[] }> {
  const r = await monitor.fresh(FRESH_MS);
  return {
    embeds: r.ok
      ? statsEmbeds(r.stats, threshold, dashboardUrl)
      : [unreachableEmbed(r.error, monitor.lastSeenAt, r.at, r.degraded)],
  };
}
