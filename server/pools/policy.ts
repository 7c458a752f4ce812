import type { PoolLimits, Strategy } from '../../shared/stats.js';
import type { WindowClock, WindowKind } from './windows.js';

/**
 * Per-key handout limits (the wire type stats carry too): fixed windows, minute and hour in UTC, day,
 * week and month from midnight in the pool's zone.
 */
export type Limits = PoolLimits;

/** How a pool chooses and rests its keys: pools.json, validated by config.ts. */
export interface PoolPolicy {
  strategy: Strategy;
  /** round-robin: consecutive handouts per key before the next takes over. */
  rotateEvery: number;
  limits: Limits;
  /** Cap on handouts across all keys of the pool per UTC minute; null for none. */
  poolPerMinute: number | null;
  /** `error` reports within failureWindowSec that block a key. */
  maxFailures: number;
  failureWindowSec: number;
  maxBackoffSec: number;
  probeTimeoutSec: number;
  resetTimezone: string;
  /**
   * The upstream tells each key's plan (Kindwise usage_info): each key is also held to its own
   * credit limits as last synced, and a sync sets its day, week, month and total counts to what
   * the upstream says it used (plus what was handed out while the upstream was asked).
   */
  upstreamLimits: boolean;
}

export const DEFAULT_POLICY: PoolPolicy = {
  strategy: 'round-robin',
  rotateEvery: 1,
  limits: {},
  poolPerMinute: null,
  maxFailures: 3,
  failureWindowSec: 300,
  maxBackoffSec: 3600,
  probeTimeoutSec: 30,
  resetTimezone: 'UTC',
  upstreamLimits: false,
};

/**
 * The constants of the rules. Both engines read them from here: `pools/rules.ts` directly, the
 * Redis script (`redis/rules.lua`) through the policy JSON the Redis pool hands it, so a change
 * here changes both.
 */
export const RULE_CONSTANTS = {
  /** Window over which 429s from different keys are read as one throttle on the caller. */
  CORRELATION_WINDOW_MS: 10_000,
  /** Pool block after correlated throttling when no report carried a Retry-After. */
  DEFAULT_POOL_THROTTLE_MS: 30_000,
  /** First rung of the backoff ladder; each further rung doubles, up to the pool's maxBackoff. */
  BASE_BACKOFF_MS: 60_000,
  /** How far back the handout rate for the forecast (and the per-minute history) looks. */
  FORECAST_WINDOW_MS: 3_600_000,
  /**
   * Least-recently-used order of keys never handed out: their file position when first seen,
   * counted up from this, so they come before every used key (whose order is a handout sequence
   * number from 1) and among themselves in file order.
   */
  NEVER_USED_SEQ_BASE: -1_000_000_000,
} as const;

export const {
  CORRELATION_WINDOW_MS,
  DEFAULT_POOL_THROTTLE_MS,
  BASE_BACKOFF_MS,
  FORECAST_WINDOW_MS,
  NEVER_USED_SEQ_BASE,
} = RULE_CONSTANTS;

/** The windowed limits, in WINDOW_KINDS order. */
export const LIMIT_WINDOWS: ReadonlyArray<[keyof Limits, WindowKind]> = [
  ['perMinute', 'minute'],
  ['perHour', 'hour'],
  ['perDay', 'day'],
  ['perMonth', 'month'],
  ['perWeek', 'week'],
];

/**
 * How many uses a pool that keeps reservations reserves ahead at a time: 1/50 of the smallest
 * limit (at least 1, at most 10,000), so a crash wastes at most about 3% of any limit (a block and
 * the half block reserved before it runs out, plus what requests were waiting for), and a busy
 * key with large limits saves a reservation every few thousand handouts, not every few hundred;
 * 0 for a pool without limits, where over-issue cannot happen.
 */
export function reservationBlock(limits: Limits): number {
  const values = [
    limits.total,
    limits.perMinute,
    limits.perHour,
    limits.perDay,
    limits.perWeek,
    limits.perMonth,
  ].filter((v): v is number => v !== undefined);
  if (values.length === 0) return 0;
  return Math.max(1, Math.min(10_000, Math.floor(Math.min(...values) / 50)));
}

/** When a key reported exhausted returns: its longest configured window's reset, else the next day's. */
export function exhaustedUntil(policy: PoolPolicy, clock: WindowClock, now: number): number {
  const l = policy.limits;
  const kind: WindowKind =
    l.perMonth !== undefined
      ? 'month'
      : l.perWeek !== undefined
        ? 'week'
        : l.perDay !== undefined || (l.perHour === undefined && l.perMinute === undefined)
          ? 'day'
          : l.perHour !== undefined
            ? 'hour'
            : 'minute';
  return clock.bounds(kind, now).endMs;
}
