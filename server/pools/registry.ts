import type { KeyFileStats, KeyStatus, StatsResponse } from '../../shared/stats.js';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import {
  StateUnavailableError,
  type Handout,
  type HandoutAttempt,
  type KeyNow,
  type PoolBackend,
  type PoolEvent,
  type PoolOptions,
  type KeyLine,
  type ReplacePool,
  type ReloadSummary,
  type ReportResult,
  type UpstreamCheck,
  type UpstreamRecorded,
} from './contract.js';
import { Activity, AppActivities, type HistoryRange, type HistorySeries } from './activity.js';
import type { PinLimits } from './pins.js';
import type { PoolPolicy } from './policy.js';
import type { ReportInput } from './rules.js';
import type { AppUsage, Spender } from './budgets.js';
import type { KeyRows } from './stats.js';

export type Clock = () => number;

/** Statuses the upstream no longer answers for: no request goes to such a key, not even a free one. */
const DEAD: ReadonlySet<KeyStatus> = new Set(['disabled', 'invalid', 'expired']);

/** Keys whose status a free call reads at a time: most find their key in the first. */
const ANSWERING_BATCH = 8;

/** How long a handout waits for reservations to be saved before it is a 503 state_unavailable. */
const RESERVATION_WAIT_MS = 10_000;

interface Entry {
  pool: PoolBackend;
  /** What the dashboard charts: handouts and outcomes over time (kept with the pool's state by its backend). */
  activity: Activity;
  /** What stats say of the pool's key file (keys/key-files.ts reads it). */
  file: KeyFileStats;
  /** The keys of the key-file lines last applied, in file order, and those lines by keyId. */
  keys: readonly PoolKey[];
  byId: ReadonlyMap<string, KeyLine>;
  /** Pins evicted to keep the pool within PIN_MAX since start (a metric). */
  pinsEvicted: number;
  /** Proxied requests since start (this instance's). */
  proxy: { requests: number; free: number; creditsSpent: number; failovers: number };
  /** Each app's history in the pool (`?app=`). */
  apps: AppActivities;
}

/** A key of a pool as whoever uses it upstream needs it (the usage sync): the key itself, and its names for logs. */
export interface PoolKey {
  keyId: string;
  key: string;
  masked: string;
}

export interface RegistryOptions {
  policies: Map<string, PoolPolicy>;
  clock: Clock;
  /** Where each pool's key file is (stats show it). */
  keyFilePath: (name: string) => string;
  /** Where the pools' events go (start.ts: the log); `traceRotations` says whether turn-taking rotations are wanted. */
  onEvent?: (e: PoolEvent) => void;
  traceRotations?: boolean;
  rng?: () => number;
  /** Makes pending reservations durable (the backend's `reserve`: rejects when it cannot save; paces its tries). */
  reserve?: () => Promise<void>;
  /** How long pins last and how many a pool keeps. */
  pinLimits?: PinLimits;
  /** The longest a report's Retry-After may keep a key out (MAX_RETRY_AFTER_S). */
  maxRetryAfterSec?: number;
  /** Builds each pool: the state backend's `createPool`. */
  createPool: (name: string, policy: PoolPolicy, options: PoolOptions) => PoolBackend;
  /** Makes a pool anew under a changed policy: the state backend's `replacePool`. */
  replacePool?: ReplacePool;
}

/**
 * The named pools and what the proxy, the API and the key files do to them. Every change to a
 * pool (handout, report, reload, admin action) is one call of its backend, atomic on its own
 * (see `exclusive`); callers await one shape whichever backend holds the state.
 */
export class PoolRegistry {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly options: RegistryOptions) {
    for (const [name, policy] of options.policies) {
      const activity = new Activity();
      const pool = options.createPool(name, policy, this.poolOptions(activity));
      this.entries.set(name, {
        pool,
        activity,
        file: {
          path: options.keyFilePath(name),
          present: false,
          keyCount: 0,
          skippedLines: 0,
          modifiedAt: null,
          error: null,
        },
        keys: [],
        byId: new Map(),
        pinsEvicted: 0,
        proxy: { requests: 0, free: 0, creditsSpent: 0, failovers: 0 },
        apps: new AppActivities(),
      });
    }
  }

  private poolOptions(activity: Activity): PoolOptions {
    return {
      rng: this.options.rng,
      onEvent: (e: PoolEvent) => this.logEvent(e),
      activity,
      pinLimits: this.options.pinLimits,
    };
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  policyOf(name: string): PoolPolicy {
    return this.options.policies.get(name)!;
  }

  /**
   * Puts a new policy on a pool (pools.json changed, validated): the backend makes the pool anew
   * under it, with the same keys and what the old one held, and it takes the old one's place the
   * moment it is whole (an in-memory pool's state moves in one step, so no handout falls between).
   */
  async applyPolicy(name: string, policy: PoolPolicy): Promise<void> {
    const e = this.entry(name);
    if (!this.options.replacePool) throw new Error(`pool ${name}: this backend cannot change a pool's policy`);
    await this.options.replacePool(e.pool, name, policy, this.poolOptions(e.activity), [...e.byId.values()], (p) => {
      e.pool = p;
      this.options.policies.set(name, policy);
    });
  }

  /** The time zone pool `name`'s days and months reset in (its policy's `resetTimezone`). */
  timeZoneOf = (name: string): string => this.options.policies.get(name)?.resetTimezone ?? 'UTC';

  has = (name: string): boolean => this.entries.has(name);

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`unknown pool ${name}`);
    return e;
  }

  private logEvent(e: PoolEvent): void {
    if (e.type === 'pins_evicted') this.entry(e.pool).pinsEvicted += e.count;
    // Turn-taking happens on every request under round-robin: passed on only when wanted (the hot path).
    if (e.type === 'rotate' && e.why === 'turn' && !this.options.traceRotations) return;
    this.options.onEvent?.(e);
  }

  /**
   * Runs a state change of a pool. No lock is needed on either backend: an in-memory pool's
   * methods are synchronous, so each runs whole before anything else on this thread; a Redis
   * pool's are each one atomic script run, across instances. Callers await what it answers.
   */
  private exclusive<T>(e: Entry, fn: (pool: PoolBackend, now: number) => T | Promise<T>): T | Promise<T> {
    return fn(e.pool, this.options.clock());
  }

  /**
   * Hands out a key from `name`. A key that needs a reservation first waits for the backend to
   * make it durable (`reserve`), then the pool is asked again.
   */
  async handout(name: string, want = 1, spender?: Spender): Promise<Handout> {
    const e = this.entry(name);
    const first = await this.exclusive(e, (p, now) => p.handout(now, want, spender));
    return this.counted(
      e,
      first.ok || first.reason !== 'reserving' ? first : await this.afterReservation(e, first, want, spender, 0),
      spender?.app,
    );
  }

  /** Counts a handout's result in the pool's history, and in its app's. */
  private counted(e: Entry, h: Handout, app: string | undefined): Handout {
    const now = this.options.clock();
    const kind = h.ok ? 'served' : 'no_key';
    const n = h.ok ? h.granted : 1;
    e.activity.record(kind, now, n); // the hot path: no array made per handout
    if (app !== undefined) e.apps.of(app).record(kind, now, n);
    return h;
  }

  /** One app's history in a pool (this instance's, since it started). */
  appActivitySeries(name: string, app: string, range: HistoryRange): HistorySeries {
    return this.entry(name).apps.series(app, range, this.options.clock());
  }

  private async afterReservation(
    e: Entry,
    h: HandoutAttempt,
    want: number,
    spender: Spender | undefined,
    since: number,
  ): Promise<Handout> {
    if (h.ok || h.reason !== 'reserving') return h;
    if (!this.options.reserve)
      throw new Error(`pool ${e.pool.name} keeps reservations, but the registry has no reserve()`);
    // Every save makes the reservations asked for before it began durable, so each round serves
    // the requests waiting then; a request can lose rounds to others only while they are served.
    const startedAt = since || performance.now();
    const late = () => performance.now() - startedAt > RESERVATION_WAIT_MS;
    if (late())
      throw new StateUnavailableError(new Error(`no reservation could be saved within ${RESERVATION_WAIT_MS} ms`));
    try {
      await this.options.reserve();
    } catch (err) {
      // Nothing saved (the backend paces its tries): ask again until the wait is over, then a 503.
      if (late()) throw err instanceof StateUnavailableError ? err : new StateUnavailableError(err);
    }
    const again = await this.exclusive(e, (p, now) => p.handout(now, want, spender));
    return this.afterReservation(e, again, want, spender, startedAt);
  }

  async report(name: string, input: ReportInput): Promise<ReportResult> {
    const e = this.entry(name);
    const cap = this.options.maxRetryAfterSec;
    if (cap !== undefined && input.retryAfterSec !== undefined && input.retryAfterSec > cap)
      input = { ...input, retryAfterSec: cap };
    const r = await this.exclusive(e, (p, now) => p.report(input, now));
    if (r.ok) e.activity.record(r.outcome, this.options.clock());
    return r;
  }

  /**
   * Records an upstream check in the pool: a sync's, or what the proxy read off an answer (an outcome
   * for the history too).
   */
  async recordUpstream(name: string, check: UpstreamCheck): Promise<UpstreamRecorded> {
    const e = this.entry(name);
    const recorded = await this.exclusive(e, (p, now) => p.recordUpstream(check, now));
    if (check.reached && check.viaProxy && check.finding && recorded.found)
      e.activity.record(check.finding.status, this.options.clock());
    return recorded;
  }

  // ---------------------------------------------------------------- for the proxy: prices and pins

  /** Changes the uses counted for a key at `at` by `delta`, and for the app charged for them (PoolBackend.recount). */
  async recount(name: string, keyId: string, delta: number, at: number, app?: string): Promise<boolean> {
    return this.exclusive(this.entry(name), (p, now) => p.recount(keyId, delta, at, now, app));
  }

  /** What each app spent in a pool, by app name. */
  async appUsage(name: string): Promise<Record<string, AppUsage>> {
    return this.exclusive(this.entry(name), (p, now) => p.appUsage(now));
  }

  /** Counts what a request spent (credits) or that it was free, in the pool's history (and its app's). */
  countSpent(name: string, credits: number, app?: string): void {
    const e = this.entry(name);
    const now = this.options.clock();
    const kind = credits > 0 ? 'credits' : 'free';
    e.activity.record(kind, now, Math.max(1, credits));
    if (app !== undefined) e.apps.of(app).record(kind, now, Math.max(1, credits));
    if (credits > 0) e.proxy.creditsSpent += credits;
    else e.proxy.free++;
  }

  /** Counts a proxied request that took `attempts` keys (each after the first a failover). */
  countProxyRequest(name: string, attempts: number): void {
    const p = this.entry(name).proxy;
    p.requests++;
    p.failovers += Math.max(0, attempts - 1);
  }

  /** A key of the pool by keyId, with its status as a handout would see it; null when the pool has no such key. */
  async keyById(name: string, keyId: string): Promise<(PoolKey & KeyNow) | null> {
    const e = this.entry(name);
    const line = e.byId.get(keyId);
    if (!line) return null;
    const [now] = await this.exclusive(e, (p, at) => p.keyStatus([keyId], at));
    return now ? { keyId, key: line.key, masked: maskKey(line.key), ...now } : null;
  }

  /** What a key of the pool has served in all (null: no such key), taken before the upstream is asked about it. */
  async servedTotal(name: string, keyId: string): Promise<number | null> {
    const [now] = await this.exclusive(this.entry(name), (p, at) => p.keyStatus([keyId], at));
    return now?.total ?? null;
  }

  /**
   * The pool's keys that the upstream may still answer for (not disabled, invalid or expired;
   * exhausted and blocked ones are, for what costs nothing), in key-file order, their status
   * read a few at a time.
   */
  async *answeringKeys(name: string): AsyncGenerator<PoolKey> {
    const e = this.entry(name);
    const keys = e.keys;
    for (let i = 0; i < keys.length; i += ANSWERING_BATCH) {
      const batch = keys.slice(i, i + ANSWERING_BATCH);
      const statuses = await this.exclusive(e, (p, now) =>
        p.keyStatus(
          batch.map((k) => k.keyId),
          now,
        ),
      );
      for (let j = 0; j < batch.length; j++) if (statuses[j] && !DEAD.has(statuses[j]!.status)) yield batch[j]!;
    }
  }

  /** Whether a string is one of the pool's keys (to mask it wherever an upstream echoes it). */
  isPoolKey(name: string): (candidate: string) => boolean {
    const e = this.entry(name);
    return (candidate) => e.byId.get(keyIdOf(candidate))?.key === candidate;
  }

  /** The keyId `ref` is pinned to in the pool, or null. */
  async pinned(name: string, ref: string): Promise<string | null> {
    return this.exclusive(this.entry(name), (p, now) => p.pinned(ref, now));
  }

  async pin(name: string, refs: readonly string[], keyId: string): Promise<void> {
    return this.exclusive(this.entry(name), (p, now) => p.pin(refs, keyId, now));
  }

  /** How many pins the pool holds, and how many were evicted since start. */
  async pinStats(name: string): Promise<{ pins: number; evicted: number }> {
    const e = this.entry(name);
    return { pins: await e.pool.pinCount(), evicted: e.pinsEvicted };
  }

  /** The history behind the dashboard's charts. */
  activitySeries(name: string, range: HistoryRange): HistorySeries | Promise<HistorySeries> {
    return this.entry(name).pool.activitySeries(range, this.options.clock());
  }

  /** The keys of a pool as its key file last applied lists them. */
  keysOf(name: string): readonly PoolKey[] {
    return this.entry(name).keys;
  }

  /** Runs `fn` on a pool as one state change (admin actions): one call of the pool's methods. */
  async withPool<T>(name: string, fn: (pool: PoolBackend, now: number) => T | Promise<T>): Promise<T> {
    return this.exclusive(this.entry(name), fn);
  }

  // ---------------------------------------------------------------- key files

  /**
   * Applies the lines of a pool's key file (keys/key-files.ts reads it) and what stats say of the
   * file. Keys that stay keep their records; removed keys leave rotation (and take their pins).
   */
  async applyKeyFile(name: string, lines: readonly KeyLine[], file: KeyFileStats): Promise<ReloadSummary> {
    const e = this.entry(name);
    const summary = await this.exclusive(e, (p, now) => p.setKeys(lines, now));
    e.keys = lines.map((l) => ({ keyId: keyIdOf(l.key), key: l.key, masked: maskKey(l.key) }));
    e.byId = new Map(lines.map((l, i) => [e.keys[i]!.keyId, l]));
    e.file = file;
    return summary;
  }

  /** What stats say of a pool's key file when it could not be applied (its keys stay as they were). */
  keyFileTrouble(name: string, error: string): void {
    const e = this.entry(name);
    e.file = { ...e.file, error };
  }

  /** How many keys a pool holds. */
  sizeOf(name: string): number {
    return this.entry(name).pool.size;
  }

  // ---------------------------------------------------------------- stats

  async stats(
    meta: { version: string; uptimeSec: number },
    options: { keys: KeyRows; pool?: string },
  ): Promise<StatsResponse> {
    const now = this.options.clock();
    const chosen = [...this.entries].filter(([name]) => options.pool === undefined || options.pool === name);
    const pools = await Promise.all(
      chosen.map(async ([, e]) => ({
        ...(await e.pool.stats(now, { keys: options.keys })),
        keyFile: { ...e.file },
        proxy: { ...e.proxy, pins: await e.pool.pinCount() },
      })),
    );
    return { version: meta.version, uptimeSec: meta.uptimeSec, generatedAt: now, pools };
  }
}
