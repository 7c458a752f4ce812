import {
  creditsLeft,
  type Credits,
  type CurrentKeyStats,
  KeyStats,
  KeyStatus,
  PoolStats,
  ServedCounts,
  UpstreamSyncStats,
} from '../../shared/stats.js';
import { forecastDryAt } from './forecast.js';
import type { PoolPolicy } from './policy.js';
import type { Counter, Hold, RuleRecord } from './records.js';
import { count, evaluate, limitsLeft, recentFailures, remainingAfter, type CompiledLimits } from './rules.js';
import type { WindowClock } from './windows.js';

/** Which per-key rows stats include: all, none, or only keys not plainly available. */
export type KeyRows = 'all' | 'none' | 'out';

/** A record as stats show it: the rules' view plus its names. */
export type StatsRecord = RuleRecord & {
  readonly keyId: string;
  readonly masked: string;
  readonly credits: Credits | null;
};

/** A pool as stats read it, from memory (Pool) or from what Redis holds (RedisPool). */
export interface PoolView {
  name: string;
  policy: PoolPolicy;
  limits: CompiledLimits;
  clock: WindowClock;
  /** The keys in file order, each settled at `now`. */
  records: readonly StatsRecord[];
  /** The round-robin key and how much of its turn it served. */
  current: { rec: StatsRecord; servedInTurn: number } | null;
  throttle: Hold | null;
  history: readonly Counter[];
  upstreamSync: UpstreamSyncStats | null;
}

function served(rec: RuleRecord, clock: WindowClock, now: number): ServedCounts {
  return {
    minute: count(rec, 0, clock, now),
    hour: count(rec, 1, clock, now),
    day: count(rec, 2, clock, now),
    month: count(rec, 3, clock, now),
    week: count(rec, 4, clock, now),
    total: rec.total,
  };
}

/** Stats for `/api/stats`, masked; `keyFile` is the registry's to add. One function for both backends. */
export function poolStats(view: PoolView, now: number, rows: KeyRows): Omit<PoolStats, 'keyFile' | 'proxy'> {
  const { limits, clock, policy } = view;
  const counts: Record<KeyStatus, number> = {
    available: 0,
    probing: 0,
    exhausted: 0,
    blocked: 0,
    invalid: 0,
    disabled: 0,
    expired: 0,
  };
  let usable = 0;
  let creditsRemaining: number | null = null;
  const keys: KeyStats[] = [];
  for (const rec of view.records) {
    const ev = evaluate(rec, limits, clock, now);
    counts[ev.status]++;
    if (ev.usable) {
      usable++;
      const left = creditsLeft(rec.credits);
      if (left !== null) creditsRemaining = (creditsRemaining ?? 0) + left;
    }
    if (rows === 'all' || (rows === 'out' && ev.status !== 'available')) {
      keys.push({
        keyId: rec.keyId,
        masked: rec.masked,
        status: ev.status,
        reason: ev.reason,
        until: ev.until,
        served: served(rec, clock, now),
        remaining: limitsLeft(rec, limits, clock, now),
        blockedUntil: rec.block?.until ?? null,
        failures: recentFailures(rec.failures, now, policy.failureWindowSec * 1000).length,
        lastUsedAt: rec.lastUsedAt,
        expiresAt: rec.expiresAt,
        credits: rec.credits,
      });
    }
  }
  const cur = view.current;
  const current: CurrentKeyStats | null = cur
    ? {
        keyId: cur.rec.keyId,
        masked: cur.rec.masked,
        remaining: remainingAfter(limitsLeft(cur.rec, limits, clock, now), policy, true, cur.servedInTurn),
      }
    : null;
  return {
    name: view.name,
    strategy: policy.strategy,
    limits: policy.limits,
    total: view.records.length,
    available: usable,
    probing: counts.probing,
    exhausted: counts.exhausted,
    blocked: counts.blocked,
    invalid: counts.invalid,
    disabled: counts.disabled,
    expired: counts.expired,
    current,
    throttledUntil: view.throttle && now < view.throttle.until ? view.throttle.until : null,
    exhaustsAt: forecastDryAt(view.records, view.history, policy.limits, clock, now),
    upstreamSync: view.upstreamSync,
    creditsRemaining,
    keys,
  };
}
