/**
 * Wire types of `GET /api/stats`, shared by the key server (which produces them)
 * and the Discord bot (which reads them). Times are epoch milliseconds unless named otherwise.
 */

/**
 * `invalid`: the upstream refuses the key (a sync found it unknown or inactive); it comes back by
 * itself when a later sync finds it fine. `disabled`: out until an operator enables it or its
 * key-file line changes (an admin action, an `invalid` report).
 */
export type KeyStatus = 'available' | 'probing' | 'exhausted' | 'blocked' | 'invalid' | 'disabled' | 'expired';

/** Credit counts per upstream window; null where the upstream sets no limit. */
export interface CreditWindows {
  day: number | null;
  week: number | null;
  month: number | null;
  total: number | null;
}

/** What the upstream last said of a key's credits (Kindwise usage_info). */
export interface Credits {
  remaining: CreditWindows;
  used: CreditWindows;
  limits: CreditWindows;
  /** When the upstream said it (epoch ms). */
  syncedAt: number;
}

/** How the pool's last upstream check went: `ok` false while the upstream cannot be reached. */
export interface UpstreamSyncStats {
  ok: boolean;
  at: number;
  error: string | null;
}

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
  /** The upstream's last word on the key's credits; null before the first sync or without an upstream. */
  credits: Credits | null;
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

/** A pool's per-key handout limits (pools.json `limits`); absent windows have none. */
export interface PoolLimits {
  perMinute?: number;
  perHour?: number;
  perDay?: number;
  /** From Monday 00:00 in the pool's reset time zone. */
  perWeek?: number;
  perMonth?: number;
  total?: number;
}

export interface PoolStats {
  name: string;
  strategy: Strategy;
  /** What each key may serve per window (the `served` counts are measured against these). */
  limits: PoolLimits;
  total: number;
  available: number;
  probing: number;
  exhausted: number;
  blocked: number;
  invalid: number;
  disabled: number;
  expired: number;
  current: CurrentKeyStats | null;
  /** Pool-wide block (correlated throttling or poolPerMinute): when it lifts, or null. */
  throttledUntil: number | null;
  /** Forecast of when the pool runs dry at the last hour's rate, or null if not before the next reset. */
  exhaustsAt: number | null;
  /** The last upstream check (null: none yet, or the pool has no upstream). */
  upstreamSync: UpstreamSyncStats | null;
  /**
   * Credits left over the usable keys: the sum of each one's smallest non-null remaining window,
   * as of its last sync; null when no usable key's credits are known.
   */
  creditsRemaining: number | null;
  keyFile: KeyFileStats;
  /**
   * Proxied requests since this instance started: how many, how many cost nothing, the credits
   * (uses, outside Kindwise) the upstream charged, failovers to another key; and the pins the
   * pool holds (shared by every instance).
   */
  proxy: ProxyStats;
  keys: KeyStats[];
}

export interface ProxyStats {
  requests: number;
  free: number;
  creditsSpent: number;
  failovers: number;
  pins: number;
}

export interface StatsResponse {
  version: string;
  uptimeSec: number;
  generatedAt: number;
  pools: PoolStats[];
  /** The named apps and what each spent (absent: the server keeps no apps). */
  apps?: AppStats[];
}

/** What an app spent in one pool (shared by instances) and how its requests went (this instance's). */
export interface AppPoolStats {
  handouts: number;
  /** Credits (uses, outside Kindwise) in the windows current now, and in all. */
  credits: { day: number; week: number; month: number; total: number };
  /** Its budget in the pool (null: none). */
  budget: { day?: number; week?: number; month?: number } | null;
  lastSeenAt: number | null;
  /** The HTTP statuses it got, counted. */
  outcomes: Record<string, number>;
  failovers: number;
}

export interface AppStats {
  name: string;
  mode: 'proxy' | 'handout' | 'both';
  disabled: boolean;
  lastSeenAt: number | null;
  usage: Record<string, AppPoolStats>;
}

/**
 * A key's credits left: its smallest non-null remaining window, or null when none is known (never
 * synced, or no limit).
 */
export function creditsLeft(credits: Credits | null): number | null {
  if (!credits) return null;
  let left: number | null = null;
  for (const v of Object.values(credits.remaining)) if (v !== null && (left === null || v < left)) left = v;
  return left === null ? null : Math.max(0, left);
}

/** An alert in force on the key server (`GET /api/alerts`): its engine's, sent to webhooks too. */
export interface ServerAlert {
  id: string;
  /** `key_invalid`, `pool_low`, `credits_low`, `runs_dry`, `sync_failing`, `saves_failing`, `budget_spent`. */
  event: string;
  severity: 'critical' | 'warning';
  pool: string | null;
  keyId?: string;
  masked?: string;
  app?: string;
  message: string;
  since: string;
}
