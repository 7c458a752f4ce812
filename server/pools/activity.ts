/**
 * What happened in a pool, counted per UTC minute for a day and per UTC hour for a week: the
 * history behind the dashboard's charts (`GET /api/stats/history`). Handouts served and refused,
 * and the outcomes reported (by apps or the proxy). Pure: time is an argument.
 */

/**
 * What is counted: handouts served, each reported outcome, requests that found no key, and of
 * proxied requests the credits they spent and the free calls (new kinds go last: saved rows are by index).
 */
export const ACTIVITY_KINDS = [
  'served',
  'ok',
  'rate_limited',
  'exhausted',
  'invalid',
  'error',
  'no_key',
  'credits',
  'free',
] as const;
export type ActivityKind = (typeof ACTIVITY_KINDS)[number];

export type HistoryRange = '1h' | '24h' | '7d';
export const HISTORY_RANGES: readonly HistoryRange[] = ['1h', '24h', '7d'];

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
/** How many buckets are kept: a day of minutes, a week of hours. */
const MINUTES_KEPT = 24 * 60;
const HOURS_KEPT = 7 * 24;

const RANGES: Record<HistoryRange, { bucketMs: number; count: number; of: 'minutes' | 'hours' }> = {
  '1h': { bucketMs: MINUTE_MS, count: 60, of: 'minutes' },
  '24h': { bucketMs: MINUTE_MS, count: MINUTES_KEPT, of: 'minutes' },
  '7d': { bucketMs: HOUR_MS, count: HOURS_KEPT, of: 'hours' },
};

/** Saved buckets: `[start, count of each ACTIVITY_KINDS …]`, oldest first, empty ones left out. */
export interface SavedActivity {
  minutes: number[][];
  hours: number[][];
}

/** The series `/api/stats/history` answers: every bucket of the range, oldest first, zeros included. */
export interface HistorySeries {
  range: HistoryRange;
  bucketMs: number;
  kinds: readonly ActivityKind[];
  /** Bucket starts (epoch ms). */
  starts: number[];
  /** Per kind, one count a bucket. */
  counts: Record<ActivityKind, number[]>;
}

const K = ACTIVITY_KINDS.length;
const INDEX: Record<ActivityKind, number> = Object.fromEntries(ACTIVITY_KINDS.map((k, i) => [k, i])) as Record<
  ActivityKind,
  number
>;

class Buckets {
  readonly byStart = new Map<number, Float64Array>();
  private newest = -Infinity;

  constructor(
    private readonly sizeMs: number,
    private readonly kept: number,
  ) {}

  add(start: number, k: number, n: number): void {
    let b = this.byStart.get(start);
    if (!b) {
      b = new Float64Array(K);
      this.byStart.set(start, b);
      if (start > this.newest) {
        this.newest = start;
        this.prune();
      }
    }
    b[k]! += n;
  }

  /** Drops buckets older than what is kept (Map order is insertion order: oldest first, as a rule). */
  private prune(): void {
    const oldest = this.newest - (this.kept - 1) * this.sizeMs;
    for (const start of this.byStart.keys()) {
      if (start >= oldest) break;
      this.byStart.delete(start);
    }
  }

  save(): number[][] {
    return [...this.byStart].sort((a, b) => a[0] - b[0]).map(([start, c]) => [start, ...c]);
  }

  clear(): void {
    this.byStart.clear();
    this.newest = -Infinity;
  }
}

export class Activity {
  private readonly minutes = new Buckets(MINUTE_MS, MINUTES_KEPT);
  private readonly hours = new Buckets(HOUR_MS, HOURS_KEPT);
  /** Counts not yet handed to a shared store (Redis); null when nothing collects them. */
  private pending: Activity | null = null;

  /** Keeps what is recorded from now on for takePending() too (a backend that flushes counts to a shared store). */
  collectPending(): void {
    this.pending ??= new Activity();
  }

  record(kind: ActivityKind, now: number, n = 1): void {
    if (n <= 0) return;
    const k = INDEX[kind];
    this.minutes.add(now - (now % MINUTE_MS), k, n);
    this.hours.add(now - (now % HOUR_MS), k, n);
    this.pending?.record(kind, now, n);
  }

  /** What was recorded since the last takePending(), left in place. */
  peekPending(): SavedActivity {
    return this.pending ? this.pending.save() : { minutes: [], hours: [] };
  }

  /** Puts counts back among the pending ones (a flush that failed). */
  addPending(saved: SavedActivity): void {
    this.pending?.add(saved);
  }

  /** What was recorded since the last call (collectPending), and a fresh start. */
  takePending(): SavedActivity {
    const p = this.pending;
    if (!p) return { minutes: [], hours: [] };
    const saved = p.save();
    p.minutes.clear();
    p.hours.clear();
    return saved;
  }

  /** Every bucket of `range` up to the one holding `now`, zeros included. */
  series(range: HistoryRange, now: number): HistorySeries {
    const { bucketMs, count, of } = RANGES[range];
    const buckets = of === 'minutes' ? this.minutes : this.hours;
    const last = now - (now % bucketMs);
    const starts: number[] = [];
    const counts = Object.fromEntries(ACTIVITY_KINDS.map((k) => [k, [] as number[]])) as Record<ActivityKind, number[]>;
    for (let i = count - 1; i >= 0; i--) {
      const start = last - i * bucketMs;
      starts.push(start);
      const b = buckets.byStart.get(start);
      ACTIVITY_KINDS.forEach((kind, k) => counts[kind].push(b ? b[k]! : 0));
    }
    return { range, bucketMs, kinds: ACTIVITY_KINDS, starts, counts };
  }

  save(): SavedActivity {
    return { minutes: this.minutes.save(), hours: this.hours.save() };
  }

  /** Adds saved counts (a state file's, or another instance's) to these. */
  add(saved: SavedActivity): void {
    for (const [start, ...c] of saved.minutes) c.forEach((n, k) => n > 0 && this.minutes.add(start!, k, n));
    for (const [start, ...c] of saved.hours) c.forEach((n, k) => n > 0 && this.hours.add(start!, k, n));
  }

  /** Replaces these counts with saved ones. */
  load(saved: SavedActivity): void {
    this.minutes.clear();
    this.hours.clear();
    this.add(saved);
  }
}

/** Each app's history in a pool (`/api/stats/history?app=`): this instance's counts since it started. */
export class AppActivities {
  private readonly byApp = new Map<string, Activity>();

  of(app: string): Activity {
    let a = this.byApp.get(app);
    if (!a) this.byApp.set(app, (a = new Activity()));
    return a;
  }

  series(app: string, range: HistoryRange, now: number): HistorySeries {
    return (this.byApp.get(app) ?? new Activity()).series(range, now);
  }
}
