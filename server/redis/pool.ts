import { keyIdOf, maskKey } from '../../shared/keys.js';
import type { KeyLine } from '../pools/contract.js';
import {
  StateUnavailableError,
  type Handout,
  type KeyNow,
  type PoolBackend,
  type PoolEvent,
  type PoolOptions,
  type ReloadSummary,
  type ReportResult,
  type UpstreamCheck,
  type UpstreamRecorded,
} from '../pools/contract.js';
import type { PoolPolicy } from '../pools/policy.js';
import { poolScript, type ScriptRun } from './script.js';
import type { RedisClient } from './client.js';
import type { AppLedger, AppUsage, Spender } from '../pools/budgets.js';
import type { HistoryRange, HistorySeries } from '../pools/activity.js';
import { StateRecord, type KeyState, type PoolState } from '../pools/records.js';
import { DEFAULT_PIN_LIMITS } from '../pools/pins.js';
import { RedisActivity } from './activity.js';
import { RedisPins } from './pins.js';
import { hashOf, keyStateOf, ledgerHash, ledgerOf } from './codec.js';
import {
  compileLimits,
  readReport,
  settle,
  upstreamHoldFor,
  type AdminAction,
  type CompiledLimits,
  type ReportInput,
} from '../pools/rules.js';
import { poolStats, type KeyRows } from '../pools/stats.js';
import { WINDOW_KINDS, WindowClock } from '../pools/windows.js';

interface ScriptEvent {
  type: 'rotate' | 'key_out' | 'pool_throttled';
  [k: string]: unknown;
}

/**
 * A pool whose state lives in Redis, shared by every server instance: each handout, report,
 * membership sync and admin action is one atomic run of the script, which applies the rules of
 * pools/rules.ts (mirrored in rules.lua). Plaintext keys stay in this process (from its key
 * file); Redis holds keyIds. Stats read what Redis holds and evaluate it with pools/stats.ts, the
 * same code that shows an in-memory pool.
 */
export class RedisPool implements PoolBackend {
  readonly clock: WindowClock;
  readonly limits: CompiledLimits;
  private lines = new Map<string, KeyLine>();
  private order: string[] = [];
  private readonly prefix: string;
  /** A run of this pool's script (its policy written in). */
  private readonly script: ScriptRun;
  private readonly pins: RedisPins;
  private readonly activity: RedisActivity;

  constructor(
    readonly name: string,
    readonly policy: PoolPolicy,
    private readonly redis: RedisClient,
    keyPrefix: string,
    private readonly options: PoolOptions = {},
  ) {
    this.clock = new WindowClock(policy.resetTimezone);
    this.limits = compileLimits(policy.limits, policy.upstreamLimits);
    // {name} is a hash tag: all of a pool's keys share one slot.
    this.prefix = `${keyPrefix}{${name}}:`;
    this.pins = new RedisPins(redis, this.prefix, options.pinLimits ?? DEFAULT_PIN_LIMITS);
    this.activity = new RedisActivity(redis, this.prefix, options.activity ?? null);
    this.script = poolScript(redis, policy);
  }

  get size(): number {
    return this.order.length;
  }

  /** The start and end of each window of WINDOW_KINDS at `now`, in order (the script's ARGV[3..12]). */
  private bounds(now: number): number[] {
    const b: number[] = [];
    for (const kind of WINDOW_KINDS) {
      const w = this.clock.bounds(kind, now);
      b.push(w.startMs, w.endMs);
    }
    return b;
  }

  /** One script run: `args` as JSON, or (a handout) as the positional values the script reads. */
  private async run<T>(op: string, now: number, args: Record<string, unknown> | Array<string | number>): Promise<T> {
    let raw: string;
    try {
      const tail = Array.isArray(args) ? args : [JSON.stringify(args)];
      raw = await this.script(this.prefix, op, now, ...this.bounds(now), ...tail);
    } catch (err) {
      throw new StateUnavailableError(err);
    }
    return JSON.parse(raw) as T;
  }

  private emit(events: ScriptEvent[] | Record<string, never> | undefined): void {
    // Lua's cjson writes an empty list as {}.
    for (const e of Array.isArray(events) ? events : [])
      this.options.onEvent?.({ ...(e as object), pool: this.name } as PoolEvent);
  }

  async setKeys(lines: readonly KeyLine[], now: number): Promise<ReloadSummary> {
    const keys = lines.map((l) => ({ id: keyIdOf(l.key), lh: l.lineHash, exp: l.expiresAt }));
    const { removedIds, ...summary } = await this.run<ReloadSummary & { removedIds: string[] | Record<string, never> }>(
      'setKeys',
      now,
      { keys },
    );
    this.lines = new Map(lines.map((l, i) => [keys[i]!.id, l]));
    this.order = keys.map((k) => k.id);
    // A removed key's identifications can be reached through no other key: its pins go.
    if (Array.isArray(removedIds) && removedIds.length > 0) await this.pins.dropKeys(new Set(removedIds));
    return summary;
  }

  async recount(keyId: string, delta: number, at: number, now: number, app?: string): Promise<boolean> {
    const starts = Object.fromEntries(WINDOW_KINDS.map((kind) => [kind, this.clock.bounds(kind, at).startMs]));
    return (await this.run<{ ok: boolean }>('recount', now, { keyId, delta, starts, app: app ?? null })).ok;
  }

  async appUsage(now: number): Promise<Record<string, AppUsage>> {
    const r = await this.run<{ usage: Record<string, AppUsage> }>('appUsage', now, {});
    return r.usage;
  }

  async keyStatus(keyIds: readonly string[], now: number): Promise<Array<KeyNow | null>> {
    if (keyIds.length === 0) return [];
    const r = await this.run<{ statuses: Array<KeyNow | null> | Record<string, never> }>('keyStatus', now, { keyIds });
    const statuses = Array.isArray(r.statuses) ? r.statuses : [];
    return keyIds.map((_, i) => statuses[i] ?? null);
  }

  pinned(ref: string, now: number): Promise<string | null> {
    return this.pins.get(ref, now);
  }

  async pin(refs: readonly string[], keyId: string, now: number): Promise<void> {
    const evicted = await this.pins.set(refs, keyId, now);
    if (evicted > 0) this.options.onEvent?.({ type: 'pins_evicted', pool: this.name, count: evicted });
  }

  pinCount(): Promise<number> {
    return this.pins.count();
  }

  async handout(now: number, want = 1, spender?: Spender, block = 0): Promise<Handout> {
    const r = await this.run<
      | { ok: true; keyId: string; remaining: number | null; granted: number; events: ScriptEvent[] }
      | (Handout & { ok: false })
    >('handout', now, [
      want,
      block,
      (this.options.rng ?? Math.random)(),
      spender?.app ?? '',
      spender?.budget ? '1' : '',
      spender?.budget?.day ?? '',
      spender?.budget?.week ?? '',
      spender?.budget?.month ?? '',
    ]);
    if (!r.ok) return r;
    this.emit(r.events);
    const line = this.lines.get(r.keyId);
    if (!line) {
      // Another instance synced a newer key file than this one has read; it will catch up within a second.
      return { ok: false, reason: 'no_key_available', retryAfterMs: 1000 };
    }
    return { ok: true, key: line.key, keyId: r.keyId, remaining: r.remaining, granted: r.granted };
  }

  async report(input: ReportInput, now: number): Promise<ReportResult> {
    const report = readReport(input, this.policy, this.clock, now);
    const r = await this.run<{ ok: true; events: ScriptEvent[] } | { ok: false; reason: 'unknown_key' }>(
      'report',
      now,
      { keyId: input.keyId, report },
    );
    if (!r.ok) return r;
    this.emit(r.events);
    return { ok: true, outcome: report.outcome };
  }

  async clearThrottle(now: number): Promise<boolean> {
    return (await this.run<{ ok: true; inForce: boolean }>('clearThrottle', now, {})).inForce;
  }

  async recordUpstream(check: UpstreamCheck, now: number): Promise<UpstreamRecorded> {
    const sync =
      check.reached && check.viaProxy
        ? null
        : JSON.stringify(
            check.reached ? { ok: true, at: now, error: null } : { ok: false, at: now, error: check.error },
          );
    const args = check.reached
      ? {
          sync,
          keyId: check.keyId,
          hold: upstreamHoldFor(check.finding, this.clock, now),
          credits: check.credits ? JSON.stringify(check.credits) : null,
          plan: check.credits?.limits ?? null,
          used: check.credits?.used ?? null,
          servedBefore: check.servedBefore ?? null,
        }
      : { sync, keyId: null };
    const r = await this.run<{ ok: boolean; revived: boolean; events: ScriptEvent[] }>('recordUpstream', now, args);
    this.emit(r.events);
    return { found: r.ok, revived: r.revived };
  }

  // ---------------------------------------------------------------- the dashboard's history (redis/activity.ts)

  /** Adds what this instance counted since the last flush to Redis. */
  flushActivity(now: number): Promise<void> {
    return this.activity.flush(now);
  }

  async activitySeries(range: HistoryRange, now: number): Promise<HistorySeries> {
    return this.activity.series(range, now);
  }

  async admin(action: AdminAction, keyId: string, now: number, reason?: string): Promise<boolean> {
    return (await this.run<{ ok: boolean }>('admin', now, { action, keyId, reason: reason ?? null })).ok;
  }

  /**
   * Writes a saved state (a state file's, or an export's) into Redis as this pool's. With
   * `replace` false it is written only when Redis holds nothing for the pool yet (the first start
   * after moving from the file backend) and says whether it was; with `replace` it takes the
   * place of what Redis holds. Membership follows at the next key-file sync.
   */
  async importState(state: PoolState, now: number, replace = false): Promise<boolean> {
    const meta: Record<string, string> = {
      turn: String(state.servedInTurn),
      seq: String(state.seq?.used ?? 0),
      nseq: String(state.seq?.seen ?? 0),
    };
    if (state.current !== null) meta.cur = state.current;
    if (state.poolWindow)
      Object.assign(meta, { pwS: String(state.poolWindow.start), pwC: String(state.poolWindow.count) });
    if (state.throttle) Object.assign(meta, { thU: String(state.throttle.until), thR: state.throttle.reason });
    if (state.upstreamSync) meta.usync = JSON.stringify(state.upstreamSync);
    const keys = Object.fromEntries(Object.entries(state.keys).map(([id, k]) => [id, hashOf(k)]));
    const hist = Object.fromEntries(state.history.map((c) => [String(c.start), String(c.count)]));
    const apps = Object.fromEntries(Object.entries(state.apps ?? {}).map(([app, l]) => [app, ledgerHash(l)]));
    const imported = (await this.run<{ ok: boolean }>('replaceState', now, { meta, keys, hist, apps, replace })).ok;
    if (imported) await this.pins.replace(state.pins ?? {}, now);
    if (imported && state.activity) await this.activity.replace(state.activity);
    return imported;
  }

  async exportState(): Promise<PoolState> {
    return {
      ...(await this.readState()).state,
      activity: await this.activity.saved(),
      pins: await this.pins.all(),
      apps: await this.ledgers(),
    };
  }

  /** The apps' ledgers as Redis holds them (apps.lua). */
  private async ledgers(): Promise<Record<string, AppLedger>> {
    try {
      const apps = await this.redis.smembers(`${this.prefix}apps`);
      const pipe = this.redis.pipeline();
      for (const app of apps) pipe.hgetall(`${this.prefix}a:${app}`);
      const replies = (await pipe.exec()) ?? [];
      return Object.fromEntries(
        apps.map((app, i) => [app, ledgerOf((replies[i]?.[1] ?? {}) as Record<string, string>)]),
      );
    } catch (err) {
      throw new StateUnavailableError(err);
    }
  }

  /** Replaces what Redis holds; the registry applies the key file again right after (membership). */
  async replaceState(state: PoolState, now: number): Promise<void> {
    await this.importState(state, now, true);
  }

  /** The pool as Redis holds it, in the state file's shape. */
  async readState(): Promise<{ ids: string[]; state: PoolState }> {
    try {
      const ids = await this.redis.zrange(`${this.prefix}pos`, 0, -1);
      const pipe = this.redis.pipeline();
      pipe.hgetall(`${this.prefix}meta`);
      pipe.hgetall(`${this.prefix}hist`);
      for (const id of ids) pipe.hgetall(`${this.prefix}k:${id}`);
      const replies = (await pipe.exec()) ?? [];
      const value = (i: number) => {
        const [err, v] = replies[i] ?? [new Error('no reply'), null];
        if (err) throw err;
        return v as Record<string, string>;
      };
      const meta = value(0);
      const hist = value(1);
      const keys: Record<string, KeyState> = {};
      ids.forEach((id, i) => (keys[id] = keyStateOf(value(i + 2))));
      const state: PoolState = {
        current: meta.cur ?? null,
        servedInTurn: Number(meta.turn ?? 0),
        poolWindow: meta.pwS === undefined ? null : { start: Number(meta.pwS), count: Number(meta.pwC ?? 0) },
        throttle: meta.thU === undefined ? null : { until: Number(meta.thU), reason: meta.thR ?? '' },
        history: Object.entries(hist)
          .map(([start, count]) => ({ start: Number(start), count: Number(count) }))
          .sort((a, b) => a.start - b.start),
        seq: { used: Number(meta.seq ?? 0), seen: Number(meta.nseq ?? 0) },
        upstreamSync: meta.usync === undefined ? null : (JSON.parse(meta.usync) as PoolState['upstreamSync']),
        keys,
      };
      return { ids, state };
    } catch (err) {
      throw new StateUnavailableError(err);
    }
  }

  async stats(now: number, options: { keys: KeyRows } = { keys: 'all' }) {
    const { ids, state } = await this.readState();
    // Keys this instance has not read from its key file yet are left out, as a handout skips them.
    const records = ids.flatMap((id) => {
      const line = this.lines.get(id);
      if (!line) return [];
      const rec = new StateRecord(state.keys[id]!, id, maskKey(line.key), line.lineHash, line.expiresAt);
      settle(rec, now); // what the script does first on its next run
      return [rec];
    });
    const cur = state.current === null ? undefined : records.find((r) => r.keyId === state.current);
    return poolStats(
      {
        name: this.name,
        policy: this.policy,
        limits: this.limits,
        clock: this.clock,
        records,
        current: cur ? { rec: cur, servedInTurn: state.servedInTurn } : null,
        throttle: state.throttle,
        history: state.history,
        upstreamSync: state.upstreamSync ?? null,
      },
      now,
      options.keys,
    );
  }
}
