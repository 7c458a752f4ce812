import type { PoolState } from '../pools/records.js';
import { WINDOW_KINDS, type WindowClock } from '../pools/windows.js';

/**
 * After a stop that was not clean (kill -9, a crash), a key's saved `reserved` is above its saved
 * `total`: up to that many uses may have been handed out since the last save, and nobody knows
 * how many. Count them all as used (the total, and the windows current now), so no limit is ever
 * passed; the cost is the unused part of one reservation per key. Returns the uses counted.
 */
export function countReservedAsUsed(pool: PoolState, clock: WindowClock, now: number): { keys: number; uses: number } {
  let keys = 0;
  let uses = 0;
  for (const k of Object.values(pool.keys)) {
    const unsure = (k.reserved ?? 0) - k.total;
    if (unsure <= 0) continue;
    keys++;
    uses += unsure;
    k.total += unsure;
    for (const kind of WINDOW_KINDS) {
      const start = clock.bounds(kind, now).startMs;
      const w = k.windows[kind];
      k.windows[kind] = w && w.start === start ? { start, count: w.count + unsure } : { start, count: unsure };
    }
    delete k.reserved;
  }
  return { keys, uses };
}
