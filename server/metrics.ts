import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KeyStatus } from '../shared/stats.js';
import type { PoolRegistry } from './registry.js';

export type HandoutOutcome = 'served' | 'no_key' | 'rate_limited' | 'throttled';

export interface Metrics {
  readonly registry: Registry;
  handout(pool: string, outcome: HandoutOutcome): void;
  report(pool: string, outcome: string): void;
  request(method: string, route: string, status: number, seconds: number): void;
  stateSave(seconds: number, ok: boolean): void;
}

const STATUSES: readonly KeyStatus[] = ['available', 'probing', 'exhausted', 'blocked', 'disabled', 'expired'];

/**
 * Prometheus metrics on a registry of their own (so several servers can share a process in
 * tests): handouts, reports, keys by status (read from the pools at scrape time), request
 * latency, state saves, and prom-client's default process metrics.
 */
export function createMetrics(pools: PoolRegistry): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'keywarden_' });
  const handouts = new Counter({ name: 'keywarden_handouts_total', help: 'Key requests by pool and outcome', labelNames: ['pool', 'outcome'], registers: [registry] });
  const reports = new Counter({ name: 'keywarden_reports_total', help: 'Upstream reports by pool and outcome', labelNames: ['pool', 'outcome'], registers: [registry] });
  new Gauge({
    name: 'keywarden_keys',
    help: 'Keys by pool and status',
    labelNames: ['pool', 'status'],
    registers: [registry],
    async collect() {
      this.reset();
      const stats = await pools.stats({ version: '', uptimeSec: 0 }, { keys: 'none' }).catch(() => null);
      for (const p of stats?.pools ?? []) {
        // Per-status counts; 'available' here is the plain status (a key waiting for its probe counts as probing).
        const byStatus: Record<KeyStatus, number> = {
          available: p.total - p.probing - p.exhausted - p.blocked - p.disabled - p.expired,
          probing: p.probing,
          exhausted: p.exhausted,
          blocked: p.blocked,
          disabled: p.disabled,
          expired: p.expired,
        };
        for (const s of STATUSES) this.set({ pool: p.name, status: s }, byStatus[s]);
      }
    },
  });
  const latency = new Histogram({
    name: 'keywarden_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const latencyChildren = new Map<string, { observe(v: number): void }>();
  // Bound children per label pair: the hot path skips prom-client's label hashing.
  const handoutChildren = new Map<string, { inc(): void }>();
  const reportChildren = new Map<string, { inc(): void }>();
  const child = (cache: Map<string, { inc(): void }>, counter: Counter, a: string, b: string) => {
    const key = `${a}\u0000${b}`;
    let c = cache.get(key);
    if (!c) {
      c = counter.labels(a, b);
      cache.set(key, c);
    }
    return c;
  };
  const saveDuration = new Histogram({ name: 'keywarden_state_save_duration_seconds', help: 'State save duration', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] });
  const saveFailures = new Counter({ name: 'keywarden_state_save_failures_total', help: 'Failed state saves', registers: [registry] });

  return {
    registry,
    handout: (pool, outcome) => child(handoutChildren, handouts, pool, outcome).inc(),
    report: (pool, outcome) => child(reportChildren, reports, pool, outcome).inc(),
    request(method, route, status, seconds) {
      // Bound children per label set: no label-object hashing on every request.
      const key = `${method} ${route} ${status}`;
      let child = latencyChildren.get(key);
      if (!child) {
        child = latency.labels(method, route, String(status));
        latencyChildren.set(key, child);
      }
      child.observe(seconds);
    },
    stateSave(seconds, ok) {
      saveDuration.observe(seconds);
      if (!ok) saveFailures.inc();
    },
  };
}
