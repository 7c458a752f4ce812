import type { ServerAlert } from '../shared/stats.js';
import type { PollResult } from './api.js';

/**
 * What the bot has told the alert channel: whether the key server answers, and the server's
 * alerts it has posted (by id). The alerts themselves are the server's (its one alert engine,
 * `GET /api/alerts`): the bot adds only what the server cannot say of itself, that it is gone.
 */
export interface AlertState {
  server: 'unknown' | 'up' | 'down';
  active: Record<string, ServerAlert>;
}

export type Alert =
  | { kind: 'server_down'; error: string; lastSeenAt: number | null; degraded?: boolean }
  | { kind: 'server_up' }
  /** One of the server's alerts began (`start`) or ended (`end`). */
  | { kind: 'server_alert'; phase: 'start' | 'end'; alert: ServerAlert };

export const INITIAL_ALERT_STATE: AlertState = { server: 'unknown', active: {} };

/**
 * Given the last state and a poll, the next state and what to post: the server going down or
 * coming back (an unknown server alerts only when it is down), and each of the server's alerts
 * once when it appears and once when it is gone. While the server is down its alerts are kept,
 * so coming back posts only real changes. A server without an alert engine (alerts null) posts
 * none.
 */
export function stepAlerts(
  state: AlertState,
  result: PollResult,
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
  if (result.alerts === null) return { state: { ...state, server: 'up' }, alerts };
  const active: Record<string, ServerAlert> = {};
  for (const a of result.alerts) {
    active[a.id] = a;
    if (!state.active[a.id]) alerts.push({ kind: 'server_alert', phase: 'start', alert: a });
  }
  for (const [id, a] of Object.entries(state.active))
    if (!active[id]) alerts.push({ kind: 'server_alert', phase: 'end', alert: a });
  return { state: { server: 'up', active }, alerts };
}
