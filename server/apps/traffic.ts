/** What one app's requests to one pool came to on this instance: the statuses it got, its failovers. */
export interface AppPoolTraffic {
  outcomes: Record<string, number>;
  failovers: number;
  /** When this instance last answered it. */
  lastSeenAt: number;
}

/**
 * Apps' requests as this instance answered them (the handout and the proxy): counts by pool and
 * the HTTP status the app got, and the proxy's failovers. Since start, per instance, like the
 * request metrics it feeds; what an app spent is the pools' (shared by every instance).
 */
export class AppTraffic {
  private readonly byApp = new Map<string, Map<string, AppPoolTraffic>>();

  private entry(app: string, pool: string): AppPoolTraffic {
    let pools = this.byApp.get(app);
    if (!pools) this.byApp.set(app, (pools = new Map()));
    let t = pools.get(pool);
    if (!t) pools.set(pool, (t = { outcomes: {}, failovers: 0, lastSeenAt: 0 }));
    return t;
  }

  answered(app: string, pool: string, status: number, now: number): void {
    const t = this.entry(app, pool);
    t.outcomes[status] = (t.outcomes[status] ?? 0) + 1;
    t.lastSeenAt = Math.max(t.lastSeenAt, now);
  }

  failedOver(app: string, pool: string, failovers: number): void {
    if (failovers > 0) this.entry(app, pool).failovers += failovers;
  }

  /** One app's traffic by pool. */
  of(app: string): Record<string, AppPoolTraffic> {
    return Object.fromEntries(this.byApp.get(app) ?? []);
  }

  /** Every app's, for the metrics: [app, pool, traffic]. */
  *all(): Generator<[string, string, AppPoolTraffic]> {
    for (const [app, pools] of this.byApp) for (const [pool, t] of pools) yield [app, pool, t];
  }
}
