/**
 * Apps' `ratePerMinute`: requests per app per UTC minute on this instance (a fixed window, as a
 * pool's poolPerMinute). A budget is the exact, fleet-wide limit; this one smooths bursts.
 */
export class AppRates {
  private readonly windows = new Map<string, { start: number; count: number }>();

  /** Counts a request of `app`; the ms until its next minute when it is over its rate, else null. */
  take(app: string, perMinute: number | null, now: number): number | null {
    if (perMinute === null) return null;
    const start = now - (now % 60_000);
    let w = this.windows.get(app);
    if (!w || w.start !== start) this.windows.set(app, (w = { start, count: 0 }));
    if (w.count >= perMinute) return start + 60_000 - now;
    w.count++;
    return null;
  }
}
