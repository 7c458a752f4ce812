import type { PollResult } from './api.js';
import { poolLevel, type PoolLevel } from './levels.js';

export interface AlertState {
  server: 'unknown' | 'up' | 'down';
  pools: Record<string, PoolLevel>;
  /** Pools whose credits left are under the threshold. */
  lowCredits: Record<string, boolean>;
  /** Per pool, the keys the upstream refuses (status invalid), by keyId. */
  invalid: Record<string, string[]>;
}

/** What the alerts compare against: LOW_KEYS_THRESHOLD and LOW_CREDITS_THRESHOLD. */
export interface Thresholds {
  keys: number;
  credits: number;
}

export type Alert =
  | { kind: 'pool_low'; pool: string; available: number; total: number }
  | { kind: 'pool_empty'; pool: string; available: number; total: number }
  | { kind: 'pool_recovered'; pool: string; available: number; total: number }
  | { kind: 'server_down'; error: string; lastSeenAt: number | null; degraded?: boolean }
  | { kind: 'server_up' }
  | { kind: 'credits_low'; pool: string; creditsRemaining: number; threshold: number }
  | { kind: 'key_invalid'; pool: string; keyId: string; masked: string; reason: string | null };

export const INITIAL_ALERT_STATE: AlertState = { server: 'unknown', pools: {}, lowCredits: {}, invalid: {} };

/**
 * The alert state machine: given the last state and a poll result, the next state and the
 * alerts to post. One alert per change (a pool dropping to the threshold, to zero, recovering;
 * the server going down or coming back), none while a state holds. A pool's first sighting
 * alerts only when it is already low or empty; an unknown server alerts only when it is down.
 * While the server is down, pool levels are kept, so coming back alerts only on real changes.
 * Credits: an alert when a pool's credits left fall under the threshold (again only after they
 * were back at or above it); one when the upstream turns a key invalid (once per key).
 */
export function stepAlerts(
  state: AlertState,
  result: PollResult,
  thresholds: Thresholds,
  lastSeenAt: number | null,
): { state: AlertState; alerts: Alert[] } {
  const alerts: Alert[] = [];
  if (!result.ok) {
    if (state.server !== 'down')
      alerts.push({
        kind: 'server_down',
        error: result.error,
        lastSeenAt,
        ...(result.degraded ? { degraded: true } : {}),
      });
    return { state: { ...state, server: 'down' }, alerts };
  }
  if (state.server === 'down') alerts.push({ kind: 'server_up' });
  const pools: Record<string, PoolLevel> = {};
  const lowCredits: Record<string, boolean> = {};
  const invalid: Record<string, string[]> = {};
  for (const p of result.stats.pools) {
    const low = p.creditsRemaining !== null && p.creditsRemaining < thresholds.credits;
    lowCredits[p.name] = low;
    if (low && !state.lowCredits[p.name])
      alerts.push({
        kind: 'credits_low',
        pool: p.name,
        creditsRemaining: p.creditsRemaining!,
        threshold: thresholds.credits,
      });
    const wasInvalid = new Set(state.invalid[p.name] ?? []);
    invalid[p.name] = [];
    for (const k of p.keys) {
      if (k.status !== 'invalid') continue;
      invalid[p.name]!.push(k.keyId);
      if (!wasInvalid.has(k.keyId))
        alerts.push({ kind: 'key_invalid', pool: p.name, keyId: k.keyId, masked: k.masked, reason: k.reason });
    }
    const level = poolLevel(p, thresholds.keys);
    const before = state.pools[p.name] ?? 'ok';
    pools[p.name] = level;
    if (level === before) continue;
    const counts = { pool: p.name, available: p.available, total: p.total };
    if (level === 'empty') alerts.push({ kind: 'pool_empty', ...counts });
    else if (level === 'low' && before === 'ok') alerts.push({ kind: 'pool_low', ...counts });
    else if (level === 'ok') alerts.push({ kind: 'pool_recovered', ...counts });
  }
  return { state: { server: 'up', pools, lowCredits, invalid }, alerts };
}
