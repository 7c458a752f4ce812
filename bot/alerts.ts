import type { PollResult } from './api.js';
import { poolLevel, type PoolLevel } from './levels.js';

export interface AlertState {
  server: 'unknown' | 'up' | 'down';
  pools: Record<string, PoolLevel>;
}

export type Alert =
  | { kind: 'pool_low'; pool: string; available: number; total: number }
  | { kind: 'pool_empty'; pool: string; available: number; total: number }
  | { kind: 'pool_recovered'; pool: string; available: number; total: number }
  | { kind: 'server_down'; error: string; lastSeenAt: number | null; degraded?: boolean }
  | { kind: 'server_up' };

export const INITIAL_ALERT_STATE: AlertState = { server: 'unknown', pools: {} };

/**
 * The alert state machine: given the last state and a poll result, the next state and the
 * alerts to post. One alert per change (a pool dropping to the threshold, to zero, recovering;
 * the server going down or coming back), none while a state holds. A pool's first sighting
 * alerts only when it is already low or empty; an unknown server alerts only when it is down.
 * While the server is down, pool levels are kept, so coming back alerts only on real changes.
 */
export function stepAlerts(state: AlertState, result: PollResult, threshold: number, lastSeenAt: number | null): { state: AlertState; alerts: Alert[] } {
  const alerts: Alert[] = [];
  if (!result.ok) {
    if (state.server !== 'down') alerts.push({ kind: 'server_down', error: result.error, lastSeenAt, ...(result.degraded ? { degraded: true } : {}) });
    return { state: { server: 'down', pools: state.pools }, alerts };
  }
  if (state.server === 'down') alerts.push({ kind: 'server_up' });
  const pools: Record<string, PoolLevel> = {};
  for (const p of result.stats.pools) {
    const level = poolLevel(p, threshold);
    const before = state.pools[p.name] ?? 'ok';
    pools[p.name] = level;
    if (level === before) continue;
    const counts = { pool: p.name, available: p.available, total: p.total };
    if (level === 'empty') alerts.push({ kind: 'pool_empty', ...counts });
    else if (level === 'low' && before === 'ok') alerts.push({ kind: 'pool_low', ...counts });
    else if (level === 'ok') alerts.push({ kind: 'pool_recovered', ...counts });
  }
  return { state: { server: 'up', pools }, alerts };
}
