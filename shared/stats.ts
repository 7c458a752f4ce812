/**
 * Wire types of `GET /api/stats`, shared by the key server (which produces them)
 * and the Discord bot (which reads them). Times are epoch milliseconds unless named otherwise.
 */

export type KeyStatus = 'available' | 'probing' | 'exhausted' | 'blocked' | 'disabled' | 'expired';

export type Strategy = 'round-robin' | 'fill-first' | 'least-recently-used' | 'random';

export interface ServedCounts {
  minute: number;
  hour: number;
  day: number;
  /** Since Monday 00:00 in the pool's reset time zone. */
  week: number;
  month: number;
  total: number;
}

export interface KeyStats {
  keyId: string;
  masked: string;
  status: KeyStatus;
  /** What put the key in its status, e.g. `reported 429`, `quota: perDay 100/100`; null when available. */
  reason: string | null;
  /** When the key comes back (epoch ms), or null when it is available or will not return on its own. */
  until: number | null;
  served: ServedCounts;
  /** Handouts left before a limit stops the key, or null when it has no limits. */
  remaining: number | null;
  blockedUntil: number | null;
  failures: number;
  lastUsedAt: number | null;
  expiresAt: number | null;
}

export interface KeyFileStats {
  path: string;
  present: boolean;
  keyCount: number;
  skippedLines: number;
  modifiedAt: number | null;
  error: string | null;
}

export interface CurrentKeyStats {
  keyId: string;
  masked: string;
  remaining: number | null;
}

export interface PoolStats {
  name: string;
  strategy: Strategy;
  total: number;
  available: number;
  probing: number;
  exhausted: number;
  blocked: number;
  disabled: number;
  expired: number;
  current: CurrentKeyStats | null;
  /** Pool-wide block (correlated throttling or poolPerMinute): when it lifts, or null. */
  throttledUntil: number | null;
  /** Forecast of when the pool runs dry at the last hour's rate, or null if not before the next reset. */
  exhaustsAt: number | null;
  keyFile: KeyFileStats;
  keys: KeyStats[];
}

export interface StatsResponse {
  version: string;
  uptimeSec: number;
  generatedAt: number;
  pools: PoolStats[];
}
