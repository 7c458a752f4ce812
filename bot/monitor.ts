import type { PollResult, StatsClient } from './api.js';

export interface Monitor {
  /** The newest result, or null before the first poll finished. */
  readonly last: PollResult | null;
  /** When the key server last answered, or null. */
  readonly lastSeenAt: number | null;
  /** Polls now, joining a poll already in flight. */
  poll(): Promise<PollResult>;
  /** The cached result when younger than maxAgeMs, else a fresh poll. */
  fresh(maxAgeMs: number): Promise<PollResult>;
  /** Polls at once and then every intervalMs after each poll finishes (never two at a time). */
  start(): void;
  stop(): void;
  onResult(listener: (r: PollResult) => void): void;
}

/** Polls the stats API on a schedule and on demand, single-flight, and tells listeners each result. */
export function createMonitor(deps: { client: StatsClient; intervalMs: number; clock: () => number }): Monitor {
  let last: PollResult | null = null;
  let lastSeenAt: number | null = null;
  let inflight: Promise<PollResult> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  const listeners: Array<(r: PollResult) => void> = [];

  const poll = (): Promise<PollResult> => {
    inflight ??= deps.client
      .fetchStats()
      .then((r) => {
        last = r;
        if (r.ok) lastSeenAt = r.at;
        for (const l of listeners) l(r);
        return r;
      })
      .finally(() => {
        inflight = null;
      });
    return inflight;
  };

  const loop = () => {
    void poll().finally(() => {
      if (running) timer = setTimeout(loop, deps.intervalMs);
    });
  };

  return {
    get last() {
      return last;
    },
    get lastSeenAt() {
      return lastSeenAt;
    },
    poll,
    fresh(maxAgeMs) {
      if (last && deps.clock() - last.at < maxAgeMs) return Promise.resolve(last);
      return poll();
    },
    start() {
      if (running) return;
      running = true;
      loop();
    },
    stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
    },
    onResult(listener) {
      listeners.push(listener);
    },
  };
}
