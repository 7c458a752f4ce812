import type { KeyState, PoolState } from '../pools/records.js';
import { WINDOW_KINDS } from '../pools/windows.js';

/**
 * How far ahead of now a state may say something ends: a Retry-After is capped at a year (the
 * report schema), every other wait is shorter. Anything later was never written by a server: it
 * is a corrupt, hand-edited or foreign file.
 */
export const STATE_HORIZON_MS = 366 * 86_400_000;
/** Slack for clocks: an event a little after now (another instance's clock) is still believable. */
const CLOCK_SLACK_MS = 86_400_000;

/**
 * Checks a parsed state (a state file, a journal entry, an import) against what a server can
 * have written by `now`, and clears what it cannot: an end time more than STATE_HORIZON_MS ahead
 * (a block, an exhaustion, a probe or a pool throttle "until 1e300" would keep a key or pool out
 * forever), an event time in the future or before 1970, a window count above the key's total.
 * Judged against now, not against the file's own `savedAt`: a file dated a century ahead holds
 * nothing longer than one dated today. Counts and totals are kept (dropping them would hand the
 * uses out again). Each clearing is one warning naming the pool, key and field.
 */
export function clearImplausible(pools: Record<string, PoolState>, now: number): string[] {
  const warnings: string[] = [];
  const latestEnd = now + STATE_HORIZON_MS;
  const latestEvent = now + CLOCK_SLACK_MS;
  const end = (t: number) => t >= 0 && t <= latestEnd;
  const event = (t: number) => t >= 0 && t <= latestEvent;
  for (const [name, pool] of Object.entries(pools)) {
    const warn = (where: string, field: string, value: unknown, why: string) =>
      warnings.push(`pool ${name}${where}: ${field} ${JSON.stringify(value)} ${why}; cleared`);
    const pastHorizon = `is more than 366 days ahead (now is ${new Date(now).toISOString()}), or before 1970`;
    const notYet = `is in the future (now is ${new Date(now).toISOString()}), or before 1970`;
    if (pool.throttle && !end(pool.throttle.until)) {
      warn('', 'throttle.until', pool.throttle.until, pastHorizon);
      pool.throttle = null;
    }
    if (pool.upstreamSync && !event(pool.upstreamSync.at)) {
      warn('', 'upstreamSync.at', pool.upstreamSync.at, notYet);
      pool.upstreamSync = null;
    }
    if (pool.poolWindow && !event(pool.poolWindow.start)) {
      warn('', 'poolWindow.start', pool.poolWindow.start, notYet);
      pool.poolWindow = null;
    }
    const history = pool.history.filter((c) => event(c.start));
    if (history.length !== pool.history.length) {
      warn('', 'history', pool.history.length - history.length, `minutes are in the future`);
      pool.history = history;
    }
    // for...in, not Object.entries: no array of a million pairs, no closure a key.
    const bounds = { end, event, pastHorizon, notYet };
    let keyId = '';
    const warnKey = (field: string, value: unknown, why: string) => warn(`, key ${keyId}`, field, value, why);
    for (keyId in pool.keys) checkKey(pool.keys[keyId]!, warnKey, bounds);
  }
  return warnings;
}

function checkKey(
  k: KeyState,
  warn: (field: string, value: unknown, why: string) => void,
  c: { end: (t: number) => boolean; event: (t: number) => boolean; pastHorizon: string; notYet: string },
): void {
  if (k.block && !c.end(k.block.until)) {
    warn('block.until', k.block.until, c.pastHorizon);
    k.block = null;
  }
  if (k.exhausted && !c.end(k.exhausted.until)) {
    warn('exhausted.until', k.exhausted.until, c.pastHorizon);
    k.exhausted = null;
  }
  if (k.upstreamHold && k.upstreamHold.until !== null && !c.end(k.upstreamHold.until)) {
    warn('upstreamHold.until', k.upstreamHold.until, c.pastHorizon);
    k.upstreamHold = null;
  }
  if (k.credits && !c.event(k.credits.syncedAt)) {
    warn('credits.syncedAt', k.credits.syncedAt, c.notYet);
    k.credits = null;
  }
  if (typeof k.probe === 'number' && !c.end(k.probe)) {
    warn('probe', k.probe, c.pastHorizon);
    k.probe = null;
  }
  if (k.lastUsedAt !== null && !c.event(k.lastUsedAt)) {
    warn('lastUsedAt', k.lastUsedAt, c.notYet);
    k.lastUsedAt = null;
  }
  const failures = k.failures.filter(c.event);
  if (failures.length !== k.failures.length) {
    warn('failures', k.failures.length - failures.length, 'are in the future');
    k.failures = failures;
  }
  if (k.removedAt !== undefined && !c.event(k.removedAt)) {
    warn('removedAt', k.removedAt, c.notYet);
    delete k.removedAt;
  }
  for (const kind of WINDOW_KINDS) {
    const w = k.windows[kind];
    if (!w) continue;
    if (!c.event(w.start)) {
      warn(`windows.${kind}.start`, w.start, c.notYet);
      delete k.windows[kind];
    } else if (w.count > k.total) {
      warn(`windows.${kind}.count`, w.count, `is more than the key's total (${k.total})`);
      delete k.windows[kind];
    }
  }
}
