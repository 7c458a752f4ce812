import type { CreditWindows } from '../../shared/stats.js';
import { recordHandout } from './forecast.js';
import type { Counter, KeyRecord } from './records.js';
import { WINDOW_KINDS, type WindowClock } from './windows.js';

/**
 * Counts changed after the fact, for the in-memory pool (pool-core.ts; `pool.lua` does the same
 * in its `recount` and `recordUpstream`): uses given back or added once a call's real cost is
 * known, and a key's counts set to what its upstream says it used.
 */

/**
 * Changes by `delta` the uses a key counted at `at`: its total, and each window `at` falls in
 * that is still current (a window that ended keeps its count); never below zero.
 */
export function recountKey(rec: KeyRecord, clock: WindowClock, delta: number, at: number, now: number): void {
  for (let k = 0; k < WINDOW_KINDS.length; k++) {
    const kind = WINDOW_KINDS[k]!;
    const start = clock.bounds(kind, at).startMs;
    if (start !== clock.bounds(kind, now).startMs) continue;
    const held = rec.countIn(k, start);
    const next = Math.max(0, held + delta);
    if (next !== held) rec.setCount(k, start, next);
  }
  rec.total = Math.max(0, rec.total + delta);
}

/**
 * The same change in the pool's own minute counts, when `at` is in the current minute: the
 * poolPerMinute window and the forecast's per-minute history.
 */
export function recountMinute(
  poolWindow: Counter | null,
  history: Counter[],
  clock: WindowClock,
  delta: number,
  at: number,
  now: number,
): void {
  const minute = clock.bounds('minute', at).startMs;
  if (minute !== clock.bounds('minute', now).startMs) return;
  if (poolWindow?.start === minute) poolWindow.count = Math.max(0, poolWindow.count + delta);
  const counted = history.find((c) => c.start === minute);
  if (counted) counted.count = Math.max(0, counted.count + delta);
  else if (delta > 0) recordHandout(history, clock, now, delta);
}

/**
 * The upstream's count of what a key used, plus what was handed out while it was asked, becomes
 * the key's count in each window it names (day, week and month in the pool's zone, and total).
 */
export function takeUpstreamCounts(
  rec: KeyRecord,
  clock: WindowClock,
  used: CreditWindows,
  servedBefore: number | undefined,
  now: number,
): void {
  const spent = servedBefore === undefined ? 0 : Math.max(0, rec.total - servedBefore);
  for (const kind of ['day', 'week', 'month'] as const) {
    const n = used[kind];
    if (n !== null) rec.setCount(WINDOW_KINDS.indexOf(kind), clock.bounds(kind, now).startMs, n + spent);
  }
  if (used.total !== null) rec.total = used.total + spent;
}
