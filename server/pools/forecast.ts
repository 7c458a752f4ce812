import { FORECAST_WINDOW_MS, LIMIT_WINDOWS, type Limits } from './policy.js';
import type { Counter, RuleRecord } from './records.js';
import { count } from './rules.js';
import { WINDOW_KINDS, type WindowClock, type WindowKind } from './windows.js';

/**
 * Counts `n` handouts at `now` in per-minute `history` (oldest first) and drops minutes older than the
 * forecast window.
 */
export function recordHandout(history: Counter[], clock: WindowClock, now: number, n: number): void {
  const start = clock.bounds('minute', now).startMs;
  const last = history[history.length - 1];
  if (last?.start === start) last.count += n;
  else history.push({ start, count: n });
  pruneHistory(history, now);
}

/** Drops the minutes of `history` that ended before the forecast window. */
export function pruneHistory(history: Counter[], now: number): void {
  const oldest = now - FORECAST_WINDOW_MS;
  let drop = 0;
  while (drop < history.length && history[drop]!.start + 60_000 <= oldest) drop++;
  if (drop > 0) history.splice(0, drop);
}

/** Handouts per millisecond over the last hour of `history` (or since handouts began, at least a minute). */
export function ratePerMs(history: readonly Counter[], now: number): number {
  const oldest = now - FORECAST_WINDOW_MS;
  let total = 0;
  let first: number | null = null;
  for (const c of history) {
    if (c.start + 60_000 <= oldest) continue;
    first ??= c.start;
    total += c.count;
  }
  if (first === null) return 0;
  return total / Math.min(FORECAST_WINDOW_MS, Math.max(60_000, now - first));
}

/**
 * When the pool runs dry at the last hour's rate: for each configured limit, the quota the keys
 * have left in its current window (keys that are disabled, expired or reported exhausted count
 * nothing; blocked keys are assumed to come back) divided by the rate. Null when no limit runs
 * out before its window resets, or nothing is being handed out.
 */
export function forecastDryAt(
  records: Iterable<RuleRecord>,
  history: readonly Counter[],
  limits: Limits,
  clock: WindowClock,
  now: number,
): number | null {
  const rate = ratePerMs(history, now);
  if (rate <= 0) return null;
  const bounded: Array<[keyof Limits, WindowKind | null]> = [...LIMIT_WINDOWS, ['total', null]];
  const list = [...records];
  let soonest: number | null = null;
  for (const [name, kind] of bounded) {
    const limit = limits[name];
    if (limit === undefined) continue;
    const k = kind === null ? -1 : WINDOW_KINDS.indexOf(kind);
    let left = 0;
    for (const rec of list) {
      if (rec.disabled || rec.exhausted || (rec.expiresAt !== null && now >= rec.expiresAt)) continue;
      left += Math.max(0, limit - (k < 0 ? rec.total : count(rec, k, clock, now)));
    }
    const dryAt = now + Math.ceil(left / rate);
    const resetAt = kind === null ? Infinity : clock.bounds(kind, now).endMs;
    if (dryAt < resetAt && (soonest === null || dryAt < soonest)) soonest = dryAt;
  }
  return soonest;
}
