import { Counter, Gauge, type Registry } from 'prom-client';
import type { AppTraffic } from '../apps/traffic.js';
import type { WebhookMetrics } from '../alerts/webhooks.js';
import type { PoolRegistry } from '../pools/registry.js';

// The metrics of the apps and the alerts, beside metrics.ts's of pools, requests and the proxy.

/** The alerts in force, and how their webhooks fare (by target: scheme and host, never a path). */
export function alertMetrics(registry: Registry, active: (() => number) | undefined): WebhookMetrics {
  new Gauge({
    name: 'keywarden_alerts_active',
    help: 'Alerts in force (GET /api/alerts)',
    registers: [registry],
    collect() {
      this.set(active?.() ?? 0);
    },
  });
  const outcome = new Counter({
    name: 'keywarden_alert_webhook_posts_total',
    help: 'Alert webhook posts by target and result (delivered, failed: retried later, dropped: the queue was full)',
    labelNames: ['target', 'result'],
    registers: [registry],
  });
  return {
    delivered: (target) => outcome.inc({ target, result: 'delivered' }),
    failed: (target) => outcome.inc({ target, result: 'failed' }),
    dropped: (target) => outcome.inc({ target, result: 'dropped' }),
  };
}

/**
 * The apps' metrics, read at scrape time: requests by app, pool and the status it got, failovers
 * (this instance's), and the credits each app spent per window (the pools', shared by instances).
 */
export function appMetrics(registry: Registry, pools: PoolRegistry, traffic: AppTraffic | undefined): void {
  new Counter({
    name: 'keywarden_app_requests_total',
    help: "Apps' handouts and proxied requests by app, pool and the HTTP status they got",
    labelNames: ['app', 'pool', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [app, pool, t] of traffic?.all() ?? [])
        for (const [status, n] of Object.entries(t.outcomes)) this.inc({ app, pool, status }, n);
    },
  });
  new Counter({
    name: 'keywarden_app_failovers_total',
    help: "Apps' proxied requests sent on to another key, by app and pool",
    labelNames: ['app', 'pool'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [app, pool, t] of traffic?.all() ?? []) if (t.failovers > 0) this.inc({ app, pool }, t.failovers);
    },
  });
  new Gauge({
    name: 'keywarden_app_credits',
    help: 'Credits (uses, outside Kindwise) each app spent, by pool and window (day, week, month, total)',
    labelNames: ['app', 'pool', 'window'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const pool of pools.names()) {
        const usage = await pools.appUsage(pool).catch(() => ({}));
        for (const [app, u] of Object.entries(usage))
          for (const [window, n] of Object.entries(u.credits)) this.set({ app, pool, window }, n);
      }
    },
  });
}
