import type { RedisClient } from './client.js';
import { StateUnavailableError } from '../pools/contract.js';
import {
  Activity,
  ACTIVITY_KINDS,
  type HistoryRange,
  type HistorySeries,
  type SavedActivity,
} from '../pools/activity.js';

/** Minute buckets older than a day, and hour buckets older than a week, are dropped (with an hour's slack). */
const MINUTES_KEPT_MS = 86_400_000;
const HOURS_KEPT_MS = 7 * 86_400_000;
const SLACK_MS = 3_600_000;

/**
 * A pool's history (the dashboard's charts) in Redis, summed over every instance: each counts in
 * memory (`Activity`) and adds its counts to one hash every few seconds (HINCRBY: instances never
 * overwrite each other), fields "m:<minute start>:<kind>" and "h:<hour start>:<kind>"; reading
 * merges it with what this instance has not added yet.
 */
export class RedisActivity {
  private readonly hash: string;
  private prunedAt = 0;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    /** This instance's counts (null: the pool records none). */
    private readonly activity: Activity | null,
  ) {
    this.hash = `${prefix}act`;
    activity?.collectPending();
  }

  /** Adds what this instance counted since the last flush; old buckets are dropped about once a minute. */
  async flush(now: number): Promise<void> {
    const activity = this.activity;
    if (!activity) return;
    const pending = activity.takePending();
    const pipe = this.redis.pipeline();
    let n = 0;
    for (const [field, count] of fieldsOf(pending)) {
      pipe.hincrby(this.hash, field, count);
      n++;
    }
    if (n === 0) return;
    if (now - this.prunedAt >= 60_000) {
      this.prunedAt = now;
      const fields = await this.redis.hkeys(this.hash).catch(() => [] as string[]);
      const old = fields.filter((f) => {
        const [kind, start] = f.split(':');
        return Number(start) < now - (kind === 'm' ? MINUTES_KEPT_MS : HOURS_KEPT_MS) - SLACK_MS;
      });
      if (old.length > 0) pipe.hdel(this.hash, ...old);
    }
    try {
      await pipe.exec();
    } catch (err) {
      activity.addPending(pending); // counted again at the next flush
      throw new StateUnavailableError(err);
    }
  }

  /** The history as Redis holds it (every instance's), in the saved shape. */
  async saved(): Promise<SavedActivity> {
    let fields: Record<string, string>;
    try {
      fields = await this.redis.hgetall(this.hash);
    } catch (err) {
      throw new StateUnavailableError(err);
    }
    const rows = { m: new Map<number, number[]>(), h: new Map<number, number[]>() };
    for (const [field, value] of Object.entries(fields)) {
      const [kind, start, k] = field.split(':');
      const byStart = rows[kind as 'm' | 'h'];
      if (!byStart) continue;
      let row = byStart.get(Number(start));
      if (!row) byStart.set(Number(start), (row = ACTIVITY_KINDS.map(() => 0)));
      row[Number(k)] = Number(value);
    }
    const list = (m: Map<number, number[]>) => [...m].sort((a, b) => a[0] - b[0]).map(([start, c]) => [start, ...c]);
    return { minutes: list(rows.m), hours: list(rows.h) };
  }

  /** The series behind the charts: Redis's counts and what this instance has not added yet. */
  async series(range: HistoryRange, now: number): Promise<HistorySeries> {
    const merged = new Activity();
    merged.add(await this.saved());
    merged.add(this.activity?.peekPending() ?? { minutes: [], hours: [] });
    return merged.series(range, now);
  }

  /** Puts a saved history (an import) in the place of what Redis holds. */
  async replace(saved: SavedActivity): Promise<void> {
    const fields = Object.fromEntries([...fieldsOf(saved)].map(([f, c]) => [f, String(c)]));
    try {
      await this.redis.del(this.hash);
      if (Object.keys(fields).length > 0) await this.redis.hset(this.hash, fields);
    } catch (err) {
      throw new StateUnavailableError(err);
    }
  }
}

/** The hash fields of saved counts, and their counts (zeros left out). */
function* fieldsOf(saved: SavedActivity): Generator<[string, number]> {
  for (const [prefix, rows] of [
    ['m', saved.minutes],
    ['h', saved.hours],
  ] as const) {
    for (const [start, ...counts] of rows) {
      for (let k = 0; k < counts.length; k++) if (counts[k]! > 0) yield [`${prefix}:${start}:${k}`, counts[k]!];
    }
  }
}
