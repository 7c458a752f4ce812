import { request } from 'undici';
import type { ServerAlert, StatsResponse } from '../shared/stats.js';

/**
 * One poll of the key server: its stats and the alerts in force (null: a server without an alert
 * engine), or why they could not be had. `at` is when it finished.
 */
export type PollResult =
  | { ok: true; stats: StatsResponse; alerts: ServerAlert[] | null; at: number }
  /** `degraded`: the server answers but its state store (Redis) does not. */
  | { ok: false; error: string; at: number; degraded?: boolean };

export interface StatsClient {
  fetchStats(): Promise<PollResult>;
}

/**
 * Client for `GET /api/stats` over undici with a hard timeout. Asks for every key's row
 * (`keys=all`: the embeds list credits per key, the alerts watch for invalid keys) unless the
 * URL says otherwise (`?keys=out` keeps polls of pools with thousands of keys small). Never
 * throws: failures are results.
 */
export function createStatsClient(
  url: string,
  token: string | null,
  options: { timeoutMs: number; clock?: () => number },
): StatsClient {
  const clock = options.clock ?? Date.now;
  const target = new URL(url);
  if (!target.searchParams.has('keys')) target.searchParams.set('keys', 'all');
  // The server's alerts, beside its stats: …/api/stats → …/api/alerts.
  const alertsUrl = new URL(target.pathname.replace(/\/stats\/?$/u, '/alerts'), target);
  const headers = { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  /** One GET with the token and a hard timeout: its status and body. */
  const get = async (at: URL): Promise<{ status: number; text: string }> => {
    const res = await request(at, {
      method: 'GET',
      headers,
      signal: AbortSignal.timeout(options.timeoutMs),
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    });
    return { status: res.statusCode, text: await res.body.text() };
  };
  /** The alerts in force; null when the server has none to give (an older one: 404). */
  const fetchAlerts = async (): Promise<ServerAlert[] | null> => {
    const res = await get(alertsUrl);
    const text = res.text;
    if (res.status !== 200) return null;
    const alerts = (JSON.parse(text) as { alerts?: unknown }).alerts;
    return Array.isArray(alerts) ? (alerts as ServerAlert[]) : null;
  };
  return {
    async fetchStats() {
      try {
        const { status, text } = await get(target);
        if (status !== 200) {
          let detail = '';
          try {
            detail = (JSON.parse(text) as { error?: string }).error ?? '';
          } catch {
            // not JSON
          }
          const degraded = status === 503 && detail === 'state_unavailable';
          return {
            ok: false,
            error: `HTTP ${status}${detail ? ` ${detail}` : ''}`,
            at: clock(),
            ...(degraded ? { degraded } : {}),
          };
        }
        const stats = JSON.parse(text) as StatsResponse;
        if (!Array.isArray(stats.pools)) return { ok: false, error: 'unexpected response (no pools)', at: clock() };
        return { ok: true, stats, alerts: await fetchAlerts().catch(() => null), at: clock() };
      } catch (err) {
        const e = err as Error & { code?: string; cause?: { code?: string } };
        const why =
          e.name === 'TimeoutError' || e.name === 'AbortError'
            ? `timed out after ${options.timeoutMs} ms`
            : (e.code ?? e.cause?.code ?? e.message);
        return { ok: false, error: why, at: clock() };
      }
    },
  };
}
