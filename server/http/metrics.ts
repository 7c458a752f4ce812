import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { logWriteFailures } from '../../shared/logger.js';
import type { KeyStatus } from '../../shared/stats.js';
import type { PoolRegistry } from '../pools/registry.js';
import type { AppTraffic } from '../apps/traffic.js';
import type { WebhookMetrics } from '../alerts/webhooks.js';
import { alertMetrics, appMetrics } from './metrics-more.js';

export type HandoutOutcome = 'served' | 'no_key' | 'rate_limited' | 'throttled' | 'budget';

export interface Metrics {
  readonly registry: Registry;
  handout(pool: string, outcome: HandoutOutcome): void;
  report(pool: string, outcome: string): void;
  request(method: string, route: string, status: number, seconds: number): void;
  stateSave(seconds: number, ok: boolean): void;
  /** One upstream usage check of a key: how long it took and whether it reached the upstream. */
  upstreamCheck(pool: string, seconds: number, reached: boolean): void;
  /** A proxied request, by the status its caller got. */
  proxyRequest(pool: string, status: number): void;
  /** One attempt of a proxied request (one key tried): what came of it, and how long the upstream took to answer. */
  proxyAttempt(pool: string, outcome: 'ok' | 'invalid' | 'refused' | 'error', seconds: number): void;
  /** What a proxied request spent: credits (or uses), or 0 for a free call. */
  proxySpent(pool: string, credits: number): void;
  /** How the alert webhooks fare. */
  readonly webhooks: WebhookMetrics;
}

const STATUSES: readonly KeyStatus[] = [
  'available',
  'probing',
  'exhausted',
  'blocked',
  'invalid',
  'disabled',
  'expired',
];

/**
 * Prometheus metrics on a registry of their own (so several servers can share a process in
 * tests): handouts, reports, keys by status (read from the pools at scrape time), request
 * latency, state saves, and prom-client's default process metrics.
 */
export function createMetrics(
  pools: PoolRegistry,
  options: { upstreamPools?: readonly string[]; traffic?: AppTraffic; activeAlerts?: () => number } = {},
): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'keywarden_' });
  const handouts = talliedCounter(registry, 'keywarden_handouts_total', 'Key requests by pool and outcome', 'outcome');
  const reports = talliedCounter(
    registry,
    'keywarden_reports_total',
    'Upstream reports by pool and outcome',
    'outcome',
  );
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
          available: p.total - p.probing - p.exhausted - p.blocked - p.invalid - p.disabled - p.expired,
          probing: p.probing,
          exhausted: p.exhausted,
          blocked: p.blocked,
          invalid: p.invalid,
          disabled: p.disabled,
          expired: p.expired,
        };
        for (const s of STATUSES) this.set({ pool: p.name, status: s }, byStatus[s]);
      }
    },
  });
  const upstreamPools = options.upstreamPools ?? [];
  new Gauge({
    name: 'keywarden_key_credits_remaining',
    help: 'Credits the upstream last said a key has left, by window (keys of pools with an upstream, once synced)',
    labelNames: ['pool', 'key_id', 'window'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const pool of upstreamPools) {
        const stats = await pools.stats({ version: '', uptimeSec: 0 }, { keys: 'all', pool }).catch(() => null);
        for (const k of stats?.pools[0]?.keys ?? []) {
          for (const [window, left] of Object.entries(k.credits?.remaining ?? {}))
            if (left !== null) this.set({ pool, key_id: k.keyId, window }, left);
        }
      }
    },
  });
  const syncDuration = new Histogram({
    name: 'keywarden_upstream_sync_duration_seconds',
    help: 'Duration of one upstream usage check of a key',
    labelNames: ['pool'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const syncFailures = new Counter({
    name: 'keywarden_upstream_sync_failures_total',
    help: 'Upstream usage checks that did not reach the upstream (timeout, connection, 5xx)',
    labelNames: ['pool'],
    registers: [registry],
  });
  const proxyRequests = talliedCounter(
    registry,
    'keywarden_proxy_requests_total',
    'Proxied requests by pool and the status the caller got',
    'status',
  );
  const proxyAttempts = talliedCounter(
    registry,
    'keywarden_proxy_attempts_total',
    'Upstream attempts of proxied requests by pool and outcome ' +
      '(ok, invalid: 401/403, refused: 429, error: 5xx or no answer)',
    'outcome',
  );
  const proxyCredits = poolTally(
    registry,
    'keywarden_proxy_credits_total',
    'Credits (uses, outside Kindwise) spent by proxied requests the upstream charged',
  );
  const proxyFree = poolTally(
    registry,
    'keywarden_proxy_free_total',
    'Proxied requests that cost nothing (retrievals, feedback, conversations, usage_info)',
  );
  new Gauge({
    name: 'keywarden_proxy_pins',
    help: 'Identifications pinned to the key that made them',
    labelNames: ['pool'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const pool of pools.names()) this.set({ pool }, (await pools.pinStats(pool).catch(() => null))?.pins ?? 0);
    },
  });
  new Counter({
    name: 'keywarden_proxy_pin_evictions_total',
    help: 'Pins evicted to keep a pool within PIN_MAX (the oldest first)',
    labelNames: ['pool'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const pool of pools.names())
        this.inc({ pool }, (await pools.pinStats(pool).catch(() => null))?.evicted ?? 0);
    },
  });
  const proxyDuration = new Histogram({
    name: 'keywarden_proxy_upstream_duration_seconds',
    help: 'Time from sending a proxied request upstream to its answer headers',
    labelNames: ['pool'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const latency = new RequestHistogram(
    'keywarden_http_request_duration_seconds',
    'HTTP request latency',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  );
  registry.registerMetric(latency as unknown as Parameters<Registry['registerMetric']>[0]);
  const saveDuration = new Histogram({
    name: 'keywarden_state_save_duration_seconds',
    help: 'State save duration',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  let logFailuresSeen = 0;
  new Counter({
    name: 'keywarden_log_write_failures_total',
    help: 'Log lines dropped because they could not be written (a full disk under LOG_FILE)',
    registers: [registry],
    collect() {
      const now = logWriteFailures();
      this.inc(now - logFailuresSeen);
      logFailuresSeen = now;
    },
  });
  appMetrics(registry, pools, options.traffic);
  const webhooks = alertMetrics(registry, options.activeAlerts);
  const saveFailures = new Counter({
    name: 'keywarden_state_save_failures_total',
    help: 'Failed state saves',
    registers: [registry],
  });

  return {
    registry,
    webhooks,
    handout: (pool, outcome) => handouts.add(pool, outcome),
    report: (pool, outcome) => reports.add(pool, outcome),
    request: (method, route, status, seconds) => latency.observe(method, route, status, seconds),
    stateSave(seconds, ok) {
      saveDuration.observe(seconds);
      if (!ok) saveFailures.inc();
    },
    proxyRequest: (pool, status) => proxyRequests.add(pool, String(status)),
    proxyAttempt(pool, outcome, seconds) {
      proxyAttempts.add(pool, outcome);
      proxyDuration.observe({ pool }, seconds);
    },
    proxySpent(pool, credits) {
      if (credits > 0) proxyCredits.add(pool, credits);
      else proxyFree.add(pool, 1);
    },
    upstreamCheck(pool, seconds, reached) {
      syncDuration.observe({ pool }, seconds);
      if (!reached) syncFailures.inc({ pool });
    },
  };
}

/**
 * A counter by pool and one more label, for counts made on every request (handouts, reports,
 * proxied requests): tallied in plain maps and added to prom-client's counter when scraped (its
 * collect hook), since a prom-client child hashes its labels on every inc().
 */
/** talliedCounter's twin for counts by pool alone. */
function poolTally(registry: Registry, name: string, help: string): { add(pool: string, n: number): void } {
  const pending = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: ['pool'],
    registers: [registry],
    collect() {
      for (const [pool, n] of pending) if (n > 0) this.inc({ pool }, n);
      pending.clear();
    },
  });
  return { add: (pool, n) => pending.set(pool, (pending.get(pool) ?? 0) + n) };
}

function talliedCounter(
  registry: Registry,
  name: string,
  help: string,
  label: string,
): { add(pool: string, value: string): void } {
  // Nested maps, not a joined key: no string is built per count.
  const pending = new Map<string, Map<string, number>>();
  new Counter({
    name,
    help,
    labelNames: ['pool', label],
    registers: [registry],
    collect() {
      for (const [pool, byValue] of pending) {
        for (const [value, n] of byValue) if (n > 0) this.inc({ pool, [label]: value }, n);
        byValue.clear();
      }
    },
  });
  return {
    add(pool, value) {
      let byValue = pending.get(pool);
      if (!byValue) pending.set(pool, (byValue = new Map()));
      byValue.set(value, (byValue.get(value) ?? 0) + 1);
    },
  };
}

interface Series {
  labels: { method: string; route: string; status: string };
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * The request-latency histogram. prom-client's Histogram validates and hashes the labels of
 * every observation, even through a bound child; this one finds its series through nested maps
 * and counts into a typed array, and gives the registry the same series (`_bucket` with
 * cumulative `le`, `_sum`, `_count`) through the shape prom-client's Registry reads of a metric:
 * name, help, type, aggregator, get(), and reset() (Registry.resetMetrics).
 */
class RequestHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** route → method → status → series: lookups build no key string. */
  private readonly series = new Map<string, Map<string, Map<number, Series>>>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (!byMethod) this.series.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (!byStatus) byMethod.set(method, (byStatus = new Map()));
    let s = byStatus.get(status);
    if (!s) {
      s = {
        labels: { method, route, status: String(status) },
        counts: new Float64Array(this.bounds.length + 1),
        sum: 0,
        count: 0,
      };
      byStatus.set(status, s);
    }
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    s.counts[i]!++;
    s.sum += seconds;
    s.count++;
  }

  reset(): void {
    this.series.clear();
  }

  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>;
  } {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const s of [...this.series.values()].flatMap((m) => [...m.values()].flatMap((b) => [...b.values()]))) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.counts[i]!;
        values.push({ labels: { ...s.labels, le }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
