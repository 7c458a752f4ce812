import type { PoolState } from '../pools/records.js';
import { WINDOW_KINDS, type WindowClock, type WindowKind } from '../pools/windows.js';
import { BUDGET_WINDOWS } from '../pools/budgets.js';

/**
 * After a stop that was not clean (kill -9, a crash), a key's saved `reserved` is above its saved
 * `total`: up to that many uses may have been handed out since the last save, and nobody knows
 * how many. Count them all as used (the total, and the windows current now), so no limit is ever
 * passed; the cost is the unused part of one reservation per key. The apps' ledgers likewise
 * (their budgets). Returns the uses counted.
 */
export function countReservedAsUsed(
  pool: PoolState,
  clock: WindowClock,
  now: number,
): { keys: number; apps: number; uses: number } {
  let keys = 0;
  let apps = 0;
  let uses = 0;
  for (const id in pool.keys) {
    const k = pool.keys[id]!;
    const unsure = (k.reserved ?? 0) - k.total;
    // Not `delete`: it would turn each of a million states into a slow dictionary object.
    if (k.reserved !== undefined) k.reserved = undefined;
    if (unsure <= 0) continue;
    keys++;
    uses += unsure;
    k.total += unsure;
    addToCurrent(k.windows, WINDOW_KINDS, unsure, clock, now);
  }
  // An app's reserved uses the same way: all counted as spent, so no budget is ever passed.
  for (const l of Object.values(pool.apps ?? {})) {
    const unsure = (l.reserved ?? 0) - l.spent;
    delete l.reserved;
    if (unsure <= 0) continue;
    apps++;
    uses += unsure;
    l.spent += unsure;
    addToCurrent(l.windows, BUDGET_WINDOWS, unsure, clock, now);
  }
  return { keys, apps, uses };
}

/** Adds `n` to each window of `kinds` current at `now` (a window of an older start counts from 0). */
function addToCurrent<K extends WindowKind>(
  windows: Partial<Record<K, { start: number; count: number }>>,
  kinds: readonly K[],
  n: number,
  clock: WindowClock,
  now: number,
): void {
  for (const kind of kinds) {
    const start = clock.bounds(kind, now).startMs;
    const w = windows[kind];
    windows[kind] = { start, count: (w?.start === start ? w.count : 0) + n };
  }
}
