import { ActivityType, type PresenceData } from 'discord.js';
import type { PollResult } from './api.js';
import { poolLevel } from './levels.js';

/** Discord's limit on a custom status text. */
const MAX_STATE = 128;

/**
 * The bot's presence for a poll result: `plantid 7/10 · healthid 3/5` as a custom status;
 * online when every pool is above the threshold, idle when one is at or below it, dnd with an
 * "unreachable" text when the poll failed, or "degraded" when the server answers but its state
 * store (Redis) does not.
 */
export function presenceFor(result: PollResult, threshold: number): PresenceData {
  if (!result.ok) {
    const state = result.degraded ? 'Key server degraded: state store down' : 'Key server unreachable';
    return { status: 'dnd', activities: [{ name: 'Custom Status', type: ActivityType.Custom, state }] };
  }
  const pools = result.stats.pools;
  let text = pools.map((p) => `${p.name} ${p.available}/${p.total}`).join(' · ') || 'no pools';
  if (text.length > MAX_STATE) text = `${text.slice(0, MAX_STATE - 1)}…`;
  const low = pools.some((p) => poolLevel(p, threshold) !== 'ok');
  return {
    status: low ? 'idle' : 'online',
    activities: [{ name: 'Custom Status', type: ActivityType.Custom, state: text }],
  };
}
