import type { CurrentKeyStats, KeyStats, KeyStatus, PoolStats, ServedCounts, Strategy } from '../../shared/stats.js';
import { keyIdOf, maskKey } from '../../shared/keys.js';
import { PositionSet } from './index/fenwick.js';
import { IndexedHeap } from './index/heap.js';
import { backoffMs, classifyStatus, recentFailures, type Outcome } from './rules.js';
import type { KeyLine } from '../keys/keyfile.js';
import { WINDOW_KINDS, WindowClock, type WindowKind } from './windows.js';

/** Per-key handout limits. Windows are fixed (minute/hour UTC, day/month at midnight in the pool's zone). */
export interface Limits {
  perMinute?: number;
  perHour?: number;
  perDay?: number;
  perMonth?: number;
  total?: number;
}

export interface PoolPolicy {
  strategy: Strategy;
  /** round-robin: consecutive handouts per key before the next takes over. */
  rotateEvery: number;
  limits: Limits;
  /** Cap on handouts across all keys of the pool per UTC minute; null for none. */
  poolPerMinute: number | null;
  /** `error` reports within failureWindowSec that block a key. */
  maxFailures: number;
  failureWindowSec: number;
  maxBackoffSec: number;
  probeTimeoutSec: number;
  resetTimezone: string;
}

export const DEFAULT_POLICY: PoolPolicy = {
  strategy: 'round-robin',
  rotateEvery: 1,
  limits: {},
  poolPerMinute: null,
  maxFailures: 3,
  failureWindowSec: 300,
  maxBackoffSec: 3600,
  probeTimeoutSec: 30,
  resetTimezone: 'UTC',
};

/** Window over which 429s from different keys are read as one throttle on the caller. */
export const CORRELATION_WINDOW_MS = 10_000;
/** Pool block after correlated throttling when no report carried a Retry-After. */
export const DEFAULT_POOL_THROTTLE_MS = 30_000;

const LIMIT_WINDOWS: ReadonlyArray<[keyof Limits, WindowKind]> = [
  ['perMinute', 'minute'],
  ['perHour', 'hour'],
  ['perDay', 'day'],
  ['perMonth', 'month'],
];

export interface Counter {
  start: number;
  count: number;
}

/** What is persisted per key (keyed by keyId); no plaintext key. */
export interface KeyState {
  windows: Partial<Record<WindowKind, Counter>>;
  total: number;
  lastUsedAt: number | null;
  block: { until: number; reason: string } | null;
  exhausted: { until: number; reason: string } | null;
  disabled: { reason: string; lineHash: string } | null;
  failures: number[];
  backoffLevel: number;
  /** 'ready': the next handout is the single probe; number: probe handed out, healthy at that time. */
  probe: 'ready' | number | null;
  /** Set while the key is not in the key file; its record is kept so a re-added key resumes. */
  removedAt?: number;
}

export interface PoolState {
  current: string | null;
  servedInTurn: number;
  poolWindow: Counter | null;
  throttle: { until: number; reason: string } | null;
  /** Handouts per UTC minute over the last hour, oldest first: the forecast's rate. */
  history: Counter[];
  keys: Record<string, KeyState>;
}

/** How far back the handout rate for the forecast looks. */
export const FORECAST_WINDOW_MS = 3_600_000;

/**
 * Numbers a pool keeps per key in one Float64Array, `STRIDE` apiece in slot order: total,
 * lastUsedAt (NaN: never), then the start (NaN: none) and count of each window in WINDOW_KINDS
 * order. Kept out of the records because a big round-robin pool updates them on every handout
 * and reads them again at every save: as fields and objects of their own (a windows object, four
 * counters, a heap number per timestamp) they were ten objects a key scattered over the heap,
 * all for the garbage collector to trace; in a table they are 80 bytes in a row, off the heap.
 */
const STRIDE = 2 + 2 * WINDOW_KINDS.length;
const TOTAL = 0;
const LAST_USED = 1;
const FIRST_WINDOW = 2;

/**
 * A key in rotation: its persisted state plus what the pool derives from its key-file line.
 * A class, not an object literal, so every record shares one hidden class: built by spreading
 * a KeyState, each of 100,000 records got a shape of its own, which made every property read
 * on the handout path a megamorphic lookup and cost ~60 MB of shape descriptors. Its counters
 * live in the pool's number table (see STRIDE), behind accessors.
 */
class KeyRecord implements KeyState {
  // Set by assign(), from the constructor.
  block!: { until: number; reason: string } | null;
  exhausted!: { until: number; reason: string } | null;
  disabled!: { reason: string; lineHash: string } | null;
  failures!: number[];
  backoffLevel!: number;
  probe!: 'ready' | number | null;
  /** LRU order: a handout sequence number (timestamps tie within a millisecond). */
  useSeq = 0;
  /** Listed in the pool's changed records (for the next journal entry). */
  changed = false;
  /** Where this key's numbers start in `nums`. */
  private readonly at: number;

  constructor(
    state: KeyState,
    readonly slot: number,
    readonly keyId: string,
    readonly key: string,
    readonly masked: string,
    readonly lineHash: string,
    readonly expiresAt: number | null,
    private readonly nums: Float64Array,
  ) {
    this.at = slot * STRIDE;
    this.assign(state);
  }

  get total(): number {
    return this.nums[this.at + TOTAL]!;
  }

  set total(n: number) {
    this.nums[this.at + TOTAL] = n;
  }

  get lastUsedAt(): number | null {
    const ms = this.nums[this.at + LAST_USED]!;
    return Number.isNaN(ms) ? null : ms;
  }

  set lastUsedAt(at: number | null) {
    this.nums[this.at + LAST_USED] = at ?? NaN;
  }

  /** The count of window kind `k` (its index in WINDOW_KINDS) if that window started at `start`, else 0. */
  countIn(k: number, start: number): number {
    const i = this.at + FIRST_WINDOW + 2 * k;
    return this.nums[i] === start ? this.nums[i + 1]! : 0;
  }

  /** Counts `n` handouts in window kind `k`, which started at `start` (a new window starts over). */
  addTo(k: number, start: number, n: number): void {
    const i = this.at + FIRST_WINDOW + 2 * k;
    if (this.nums[i] === start) this.nums[i + 1]! += n;
    else {
      this.nums[i] = start;
      this.nums[i + 1] = n;
    }
  }

  /** The counters as persisted (a copy). */
  get windows(): Partial<Record<WindowKind, Counter>> {
    const out: Partial<Record<WindowKind, Counter>> = {};
    for (let k = 0; k < WINDOW_KINDS.length; k++) {
      const i = this.at + FIRST_WINDOW + 2 * k;
      if (!Number.isNaN(this.nums[i]!)) out[WINDOW_KINDS[k]!] = { start: this.nums[i]!, count: this.nums[i + 1]! };
    }
    return out;
  }

  set windows(windows: Partial<Record<WindowKind, Counter>>) {
    for (let k = 0; k < WINDOW_KINDS.length; k++) {
      const i = this.at + FIRST_WINDOW + 2 * k;
      const c = windows[WINDOW_KINDS[k]!];
      this.nums[i] = c ? c.start : NaN;
      this.nums[i + 1] = c ? c.count : 0;
    }
  }

  /** Takes over a persisted state (construction, restore). */
  assign(state: KeyState): void {
    this.windows = state.windows;
    this.total = state.total;
    this.lastUsedAt = state.lastUsedAt;
    this.block = state.block;
    this.exhausted = state.exhausted;
    this.disabled = state.disabled;
    this.failures = [...state.failures];
    this.backoffLevel = state.backoffLevel;
    this.probe = state.probe;
  }
}

/** A copy, so a persisted state handed out never shares its counters with one the pool holds. */
function copyWindows(windows: Partial<Record<WindowKind, Counter>>): Partial<Record<WindowKind, Counter>> {
  const out: Partial<Record<WindowKind, Counter>> = {};
  for (const kind of WINDOW_KINDS) {
    const c = windows[kind];
    if (c) out[kind] = { start: c.start, count: c.count };
  }
  return out;
}

export type Handout =
  | { ok: true; key: string; keyId: string; remaining: number | null; granted: number }
  | { ok: false; reason: 'no_key_available' | 'pool_rate_limited' | 'pool_throttled'; retryAfterMs: number | null };

export interface ReportInput {
  keyId: string;
  outcome?: Outcome;
  /** Upstream HTTP status; classified when no outcome is given. */
  status?: number;
  retryAfterSec?: number;
}

export type ReportResult = { ok: true; outcome: Outcome } | { ok: false; reason: 'unknown_key' };

export interface ReloadSummary {
  added: number;
  removed: number;
  kept: number;
  reenabled: number;
}

/** Which per-key rows stats include: all, none, or only keys not plainly available. */
export type KeyRows = 'all' | 'none' | 'out';

/**
 * What the registry needs of a pool, whichever backend holds its state: `Pool` (in memory, saved
 * to the state file) or `RedisPool` (in Redis, shared by instances).
 */
export interface PoolBackend {
  readonly name: string;
  readonly policy: PoolPolicy;
  readonly size: number;
  setKeys(lines: readonly KeyLine[], now: number): ReloadSummary | Promise<ReloadSummary>;
  handout(now: number, want?: number): Handout | Promise<Handout>;
  report(input: ReportInput, now: number): ReportResult | Promise<ReportResult>;
  disable(keyId: string, reason: string, now: number): boolean | Promise<boolean>;
  enable(keyId: string, now: number): boolean | Promise<boolean>;
  resetCounters(keyId: string, now: number): boolean | Promise<boolean>;
  stats(now: number, options?: { keys: KeyRows }): Omit<PoolStats, 'keyFile'> | Promise<Omit<PoolStats, 'keyFile'>>;
}

export type PoolEvent =
  | { type: 'rotate'; pool: string; from: string | null; to: string; why: 'turn' | 'unavailable' }
  | { type: 'key_out'; pool: string; keyId: string; status: KeyStatus; reason: string; until: number | null }
  | { type: 'pool_throttled'; pool: string; until: number; keys: number };

interface Evaluation {
  status: KeyStatus;
  reason: string | null;
  until: number | null;
  usable: boolean;
}

const AVAILABLE: Evaluation = { status: 'available', reason: null, until: null, usable: true };

/** Start of each window kind current at a save: written once per pool, so keys carry bare counts. */
export type WindowStarts = Record<WindowKind, number>;

/**
 * `"keyId":{…}` for the state file (format 2): total, lastUsedAt and the counts of the windows
 * current at `starts` (a count of an older window is 0: nothing reads it), then only the health
 * fields that differ from a healthy key's. Built by hand because saves of large pools run it for
 * every key handed out since the last save; format 1 wrote ~330 bytes a key, this ~75.
 */
function keyEntryJson(keyId: string, r: KeyState, starts: WindowStarts): string {
  let counts: string;
  if (r instanceof KeyRecord) {
    // Indexes in WINDOW_KINDS order, the order of `counts` in the file.
    counts = r.countIn(0, starts.minute) + ',' + r.countIn(1, starts.hour) + ',' + r.countIn(2, starts.day) + ',' + r.countIn(3, starts.month);
  } else {
    const w = r.windows;
    counts = countIn(w.minute, starts.minute) + ',' + countIn(w.hour, starts.hour) + ',' + countIn(w.day, starts.day) + ',' + countIn(w.month, starts.month);
  }
  const used = r.lastUsedAt === null ? 'null' : msText(r.lastUsedAt);
  let out = '"' + keyId + '":{"total":' + r.total + ',"lastUsedAt":' + used + ',"counts":[' + counts + ']';
  if (r.block !== null) out += ',"block":' + JSON.stringify(r.block);
  if (r.exhausted !== null) out += ',"exhausted":' + JSON.stringify(r.exhausted);
  if (r.disabled !== null) out += ',"disabled":' + JSON.stringify(r.disabled);
  if (r.failures.length > 0) out += ',"failures":[' + r.failures.join(',') + ']';
  if (r.backoffLevel !== 0) out += ',"backoffLevel":' + r.backoffLevel;
  if (r.probe !== null) out += ',"probe":' + (r.probe === 'ready' ? '"ready"' : msText(r.probe));
  if (r.removedAt !== undefined) out += ',"removedAt":' + msText(r.removedAt);
  return out + '}';
}

function countIn(c: Counter | undefined, start: number): number {
  return c !== undefined && c.start === start ? c.count : 0;
}

const ZEROS = ['', '0', '00', '000', '0000', '00000'];

/**
 * A millisecond timestamp as JSON, like String(ms) but about twice as fast: V8 formats numbers
 * above 2^31 through its general double path, so the two halves are formatted as small integers.
 */
export function msText(ms: number): string {
  if (!Number.isInteger(ms) || ms < 1e6 || ms >= 2 ** 53) return String(ms);
  const high = Math.floor(ms / 1e6);
  const low = String(ms - high * 1e6);
  return high + ZEROS[6 - low.length]! + low;
}

/** The parts of a report every backend reads the same way. */
export function readReport(input: ReportInput): { outcome: Outcome; retryAfterMs: number | null; label: string } {
  const outcome = input.outcome ?? classifyStatus(input.status!);
  return {
    outcome,
    retryAfterMs: input.retryAfterSec === undefined ? null : Math.round(input.retryAfterSec * 1000),
    label: input.status !== undefined ? `reported ${input.status}` : `reported ${outcome}`,
  };
}

/** Why an `invalid` report disabled a key. */
export function invalidReason(input: ReportInput): string {
  return input.status !== undefined ? `invalid: ${input.status}` : 'reported invalid';
}

/** When a key reported exhausted returns: its longest configured window's reset, else the next day's. */
export function exhaustedUntil(policy: PoolPolicy, clock: WindowClock, now: number): number {
  const l = policy.limits;
  const kind: WindowKind = l.perMonth !== undefined ? 'month' : l.perDay !== undefined || (l.perHour === undefined && l.perMinute === undefined) ? 'day' : l.perHour !== undefined ? 'hour' : 'minute';
  return clock.bounds(kind, now).endMs;
}

function emptyState(): KeyState {
  return {
    windows: {},
    total: 0,
    lastUsedAt: null,
    block: null,
    exhausted: null,
    disabled: null,
    failures: [],
    backoffLevel: 0,
    probe: null,
  };
}

/**
 * One pool of keys: selection by strategy under limits, health blocks, and the bookkeeping that
 * persists. Pure and synchronous: every method takes `now`; callers serialise access with the
 * pool's mutex. Usable keys live in a Fenwick-backed set (and a heap for LRU), keys that are out
 * with a known return time in a wake heap, so a handout is O(log n) amortised in the pool size.
 */
export class Pool implements PoolBackend {
  readonly clock: WindowClock;
  /** The configured window limits, looked up once: quotaHit and limitsLeft run on every handout. */
  private readonly windowLimits: Array<{ name: keyof Limits; kind: WindowKind; k: number; limit: number }> = [];
  private records: KeyRecord[] = [];
  private byId = new Map<string, KeyRecord>();
  private retired = new Map<string, KeyState>();
  private usable = new PositionSet(0);
  private readonly lru = new IndexedHeap();
  private readonly wake = new IndexedHeap();
  private current = -1;
  private servedInTurn = 0;
  private poolWindow: Counter | null = null;
  private throttle: { until: number; reason: string } | null = null;
  private history: Counter[] = [];
  private recent429 = new Map<string, { at: number; retryAfterMs: number | null; prior: Pick<KeyState, 'block' | 'backoffLevel' | 'probe'> }>();
  private seq = 0;
  private readonly dirtyListeners: Array<() => void> = [];
  /**
   * Records changed since the last save began (what a journal entry must carry), each once (its
   * `changed` flag). An array, not a Set: a big round-robin pool adds a record on every handout.
   */
  private changed: KeyRecord[] = [];
  /** Membership or retired records changed: only a full snapshot can say so. */
  private needsFull = true;

  constructor(
    readonly name: string,
    readonly policy: PoolPolicy,
    private readonly options: { rng?: () => number; onEvent?: (e: PoolEvent) => void } = {},
  ) {
    this.clock = new WindowClock(policy.resetTimezone);
    for (const [name, kind] of LIMIT_WINDOWS) {
      const limit = policy.limits[name];
      if (limit !== undefined) this.windowLimits.push({ name, kind, k: WINDOW_KINDS.indexOf(kind), limit });
    }
  }

  get size(): number {
    return this.records.length;
  }

  /** Called whenever persisted state changes. */
  onDirty(listener: () => void): void {
    this.dirtyListeners.push(listener);
  }

  private dirty(): void {
    for (const l of this.dirtyListeners) l();
  }

  /** A record's persisted state changed: list it for the next journal entry and mark the pool dirty. */
  private touch(rec: KeyRecord): void {
    if (!rec.changed) {
      rec.changed = true;
      this.changed.push(rec);
    }
    this.dirty();
  }

  /** True when the next save of this pool must be a full snapshot. */
  get fullSaveNeeded(): boolean {
    return this.needsFull;
  }

  /** After a failed save: what it carried is not on disk, so the next save must be full. */
  requireFullSave(): void {
    this.needsFull = true;
  }

  private emit(e: PoolEvent): void {
    this.options.onEvent?.(e);
  }

  // ---------------------------------------------------------------- membership

  /**
   * Replaces the pool's keys with the lines of its key file. Keys that stay keep their records;
   * removed keys leave rotation but their records are kept (retired) so re-adding resumes them;
   * a key disabled as invalid is enabled again when its line changed.
   */
  setKeys(lines: readonly KeyLine[], now: number): ReloadSummary {
    const summary: ReloadSummary = { added: 0, removed: 0, kept: 0, reenabled: 0 };
    const currentKeyId = this.records[this.current]?.keyId ?? null;
    const next: KeyRecord[] = [];
    const nextById = new Map<string, KeyRecord>();
    const nums = new Float64Array(lines.length * STRIDE);
    for (const line of lines) {
      const keyId = keyIdOf(line.key);
      const prior = this.byId.get(keyId);
      const retired = prior ? undefined : this.retired.get(keyId);
      if (prior) summary.kept++;
      else summary.added++;
      const base: KeyState = prior ?? retired ?? emptyState();
      const rec = new KeyRecord(base, next.length, keyId, line.key, maskKey(line.key), line.lineHash, line.expiresAt, nums);
      rec.useSeq = prior?.useSeq ?? 0;
      if (retired) this.retired.delete(keyId);
      if (rec.disabled && rec.disabled.lineHash !== line.lineHash) {
        rec.disabled = null;
        summary.reenabled++;
      }
      next.push(rec);
      nextById.set(keyId, rec);
    }
    for (const old of this.records) {
      if (!nextById.has(old.keyId)) {
        summary.removed++;
        this.retired.set(old.keyId, { ...this.persistable(old), removedAt: now });
      }
    }
    this.records = next;
    this.byId = nextById;
    this.needsFull = true;
    this.current = currentKeyId === null ? -1 : (nextById.get(currentKeyId)?.slot ?? -1);
    if (this.current === -1) this.servedInTurn = 0;
    this.rebuildIndexes(now);
    if (summary.added || summary.removed || summary.reenabled) this.dirty();
    return summary;
  }

  private rebuildIndexes(now: number): void {
    // LRU order follows lastUsedAt (never used first), ties by file order.
    const order = [...this.records].sort((a, b) => (a.lastUsedAt ?? -1) - (b.lastUsedAt ?? -1) || a.slot - b.slot);
    this.seq = 0;
    for (const rec of order) rec.useSeq = ++this.seq;
    this.usable = new PositionSet(this.records.length);
    this.lru.clear();
    this.wake.clear();
    for (const rec of this.records) this.place(rec, now);
  }

  // ---------------------------------------------------------------- evaluation

  /** Applies time-based transitions: a block that ended starts a probe; a probe that ran its time out is healthy. */
  private settle(rec: KeyRecord, now: number): void {
    if (rec.block && now >= rec.block.until) {
      rec.block = null;
      rec.probe = 'ready';
      this.touch(rec);
    }
    if (typeof rec.probe === 'number' && now >= rec.probe) {
      rec.probe = null;
      rec.backoffLevel = 0;
      this.touch(rec);
    }
    if (rec.exhausted && now >= rec.exhausted.until) {
      rec.exhausted = null;
      this.touch(rec);
    }
  }

  private count(rec: KeyRecord, kind: WindowKind, now: number, k = WINDOW_KINDS.indexOf(kind)): number {
    return rec.countIn(k, this.clock.bounds(kind, now).startMs);
  }

  /** Status of a settled record at `now`. */
  private evaluate(rec: KeyRecord, now: number): Evaluation {
    if (rec.disabled) return { status: 'disabled', reason: rec.disabled.reason, until: null, usable: false };
    if (rec.expiresAt !== null && now >= rec.expiresAt) return { status: 'expired', reason: 'expired', until: null, usable: false };
    if (rec.block) return { status: 'blocked', reason: rec.block.reason, until: rec.block.until, usable: false };
    if (rec.exhausted) return { status: 'exhausted', reason: rec.exhausted.reason, until: rec.exhausted.until, usable: false };
    const quota = this.quotaHit(rec, now);
    if (quota) return { status: 'exhausted', reason: quota.reason, until: quota.until, usable: false };
    if (rec.probe === 'ready') return { status: 'probing', reason: 'probing after block', until: null, usable: true };
    if (typeof rec.probe === 'number') return { status: 'probing', reason: 'probe in flight', until: rec.probe, usable: false };
    return AVAILABLE;
  }

  /** The limits a key is at, with when all of them have reset (null: `total`, never). */
  private quotaHit(rec: KeyRecord, now: number): { reason: string; until: number | null } | null {
    const limits = this.policy.limits;
    let reason: string | null = null;
    let until: number | null = 0;
    if (limits.total !== undefined && rec.total >= limits.total) {
      reason = `quota: total ${rec.total}/${limits.total}`;
      until = null;
    }
    for (const { name, kind, k, limit } of this.windowLimits) {
      const used = this.count(rec, kind, now, k);
      if (used >= limit) {
        reason ??= `quota: ${name} ${used}/${limit}`;
        if (until !== null) until = Math.max(until, this.clock.bounds(kind, now).endMs);
      }
    }
    return reason === null ? null : { reason, until };
  }

  /** Handouts left before a limit stops the key; null when it has none. */
  private limitsLeft(rec: KeyRecord, now: number): number | null {
    const limits = this.policy.limits;
    let left: number | null = limits.total === undefined ? null : limits.total - rec.total;
    for (const { kind, k, limit } of this.windowLimits) {
      const l = limit - this.count(rec, kind, now, k);
      left = left === null ? l : Math.min(left, l);
    }
    return left === null ? null : Math.max(0, left);
  }

  /** Puts a record in the usable set or, when out, in the wake heap (if it returns on its own). */
  private place(rec: KeyRecord, now: number): Evaluation {
    this.settle(rec, now);
    const ev = this.evaluate(rec, now);
    if (ev.usable) {
      this.wake.delete(rec.slot);
      this.usable.add(rec.slot);
      if (this.policy.strategy === 'least-recently-used') this.lru.set(rec.slot, rec.useSeq);
    } else {
      this.usable.delete(rec.slot);
      this.lru.delete(rec.slot);
      if (ev.until !== null) this.wake.set(rec.slot, ev.until);
      else this.wake.delete(rec.slot);
    }
    return ev;
  }

  private wakeDue(now: number): void {
    for (let at = this.wake.peekPriority(); at !== undefined && at <= now; at = this.wake.peekPriority()) {
      const slot = this.wake.pop()!;
      this.place(this.records[slot]!, now);
    }
  }

  /** Earliest time a key comes back on its own, or null. */
  private nextWake(): number | null {
    return this.wake.peekPriority() ?? null;
  }

  // ---------------------------------------------------------------- selection

  private pick(): number {
    if (this.usable.length === 0) return -1;
    switch (this.policy.strategy) {
      case 'round-robin':
        if (this.current >= 0 && this.usable.has(this.current) && this.servedInTurn < this.policy.rotateEvery) return this.current;
        // The usual case, the next slot is usable, needs no walk of the tree.
        if (this.current + 1 < this.records.length && this.usable.has(this.current + 1)) return this.current + 1;
        return this.usable.nextAfter(this.current);
      case 'fill-first':
        return this.usable.kth(0);
      case 'random':
        return this.usable.kth(Math.floor((this.options.rng ?? Math.random)() * this.usable.length));
      case 'least-recently-used':
        return this.lru.peek() ?? -1;
    }
  }

  /**
   * Hands out the next usable key, or says why none is and when to retry. `want` > 1 asks for a
   * lease of several uses of one key (for client-side caching): all count as handouts now, and
   * the grant is cut to what the key's limits, the pool cap and a probe allow.
   */
  handout(now: number, want = 1): Handout {
    if (this.throttle) {
      if (now < this.throttle.until) return { ok: false, reason: 'pool_throttled', retryAfterMs: this.throttle.until - now };
      this.throttle = null;
      this.dirty();
    }
    const cap = this.policy.poolPerMinute;
    const minute = this.clock.bounds('minute', now);
    if (this.poolWindow?.start !== minute.startMs) this.poolWindow = { start: minute.startMs, count: 0 };
    if (cap !== null && this.poolWindow.count >= cap) {
      return { ok: false, reason: 'pool_rate_limited', retryAfterMs: minute.endMs - now };
    }
    this.wakeDue(now);
    let rec: KeyRecord | undefined;
    for (;;) {
      const slot = this.pick();
      if (slot < 0) {
        const at = this.nextWake();
        return { ok: false, reason: 'no_key_available', retryAfterMs: at === null ? null : Math.max(0, at - now) };
      }
      rec = this.records[slot]!;
      const ev = this.place(rec, now);
      if (ev.usable) break;
      this.emit({ type: 'key_out', pool: this.name, keyId: rec.keyId, status: ev.status, reason: ev.reason ?? ev.status, until: ev.until });
    }
    let granted = Math.max(1, Math.floor(want));
    if (granted > 1) {
      const left = this.limitsLeft(rec, now);
      if (left !== null) granted = Math.min(granted, left);
      if (cap !== null) granted = Math.min(granted, cap - this.poolWindow.count);
      if (rec.probe === 'ready') granted = 1;
    }
    return this.serve(rec, now, granted);
  }

  private serve(rec: KeyRecord, now: number, granted: number): Handout & { ok: true } {
    for (let k = 0; k < WINDOW_KINDS.length; k++) rec.addTo(k, this.clock.bounds(WINDOW_KINDS[k]!, now).startMs, granted);
    rec.total += granted;
    rec.lastUsedAt = now;
    rec.useSeq = ++this.seq;
    this.poolWindow!.count += granted;
    this.recordHandout(now, granted);

    if (rec.slot !== this.current) {
      const from = this.records[this.current]?.keyId ?? null;
      const wasUsable = this.current >= 0 && this.usable.has(this.current);
      this.emit({ type: 'rotate', pool: this.name, from, to: rec.keyId, why: wasUsable || from === null ? 'turn' : 'unavailable' });
      this.current = rec.slot;
      this.servedInTurn = 0;
    } else if (this.servedInTurn >= this.policy.rotateEvery) {
      this.servedInTurn = 0; // the only usable key starts a new turn
    }
    this.servedInTurn += granted;

    if (rec.probe === 'ready') rec.probe = now + this.policy.probeTimeoutSec * 1000;
    const after = this.place(rec, now);
    if (!after.usable && after.status !== 'probing') {
      this.emit({ type: 'key_out', pool: this.name, keyId: rec.keyId, status: after.status, reason: after.reason ?? after.status, until: after.until });
    }
    this.touch(rec);
    return { ok: true, key: rec.key, keyId: rec.keyId, remaining: this.remainingOf(rec, now), granted };
  }

  private remainingOf(rec: KeyRecord, now: number): number | null {
    const limitsLeft = this.limitsLeft(rec, now);
    if (this.policy.strategy !== 'round-robin' || rec.slot !== this.current) return limitsLeft;
    const turnLeft = Math.max(0, this.policy.rotateEvery - this.servedInTurn);
    return limitsLeft === null ? turnLeft : Math.min(turnLeft, limitsLeft);
  }

  // ---------------------------------------------------------------- reports

  /** Applies what the upstream answered for a key's request. */
  report(input: ReportInput, now: number): ReportResult {
    const rec = this.byId.get(input.keyId);
    if (!rec) return { ok: false, reason: 'unknown_key' };
    const { outcome, retryAfterMs, label } = readReport(input);
    const maxBackoff = this.policy.maxBackoffSec * 1000;
    this.settle(rec, now);
    const probingOut = typeof rec.probe === 'number';

    switch (outcome) {
      case 'ok':
        rec.failures = [];
        rec.backoffLevel = 0;
        if (rec.probe !== null) rec.probe = null;
        break;
      case 'rate_limited': {
        if (this.throttle && now < this.throttle.until) break; // part of the pool-wide throttle already in force
        this.recent429.set(rec.keyId, {
          at: now,
          retryAfterMs,
          prior: { block: rec.block, backoffLevel: rec.backoffLevel, probe: rec.probe },
        });
        this.blockKey(rec, now, retryAfterMs ?? backoffMs(rec.backoffLevel, maxBackoff), label, retryAfterMs === null);
        if (this.checkCorrelated(now)) return { ok: true, outcome };
        break;
      }
      case 'exhausted': {
        rec.probe = null;
        rec.exhausted = { until: exhaustedUntil(this.policy, this.clock, now), reason: label === 'reported exhausted' ? label : `${label} (quota)` };
        break;
      }
      case 'invalid':
        rec.probe = null;
        rec.disabled = { reason: invalidReason(input), lineHash: rec.lineHash };
        break;
      case 'error': {
        if (probingOut) {
          this.blockKey(rec, now, backoffMs(rec.backoffLevel, maxBackoff), `${label} while probing`, true);
          break;
        }
        const windowMs = this.policy.failureWindowSec * 1000;
        rec.failures = [...recentFailures(rec.failures, now, windowMs), now];
        if (rec.failures.length >= this.policy.maxFailures) {
          const n = rec.failures.length;
          rec.failures = [];
          this.blockKey(rec, now, backoffMs(rec.backoffLevel, maxBackoff), `${n} errors in ${this.policy.failureWindowSec}s (last: ${label})`, true);
        }
        break;
      }
    }
    const ev = this.place(rec, now);
    if (!ev.usable && outcome !== 'ok') {
      this.emit({ type: 'key_out', pool: this.name, keyId: rec.keyId, status: ev.status, reason: ev.reason ?? ev.status, until: ev.until });
    }
    this.touch(rec);
    return { ok: true, outcome };
  }

  private blockKey(rec: KeyRecord, now: number, forMs: number, reason: string, climb: boolean): void {
    rec.probe = null;
    rec.block = { until: now + Math.max(0, forMs), reason };
    if (climb) rec.backoffLevel++;
  }

  /**
   * More than half of the pool's keys (and at least two) reporting 429 within the correlation
   * window means the caller is throttled, not the keys: undo their blocks and block the pool.
   */
  private checkCorrelated(now: number): boolean {
    for (const [keyId, r] of this.recent429) {
      if (r.at <= now - CORRELATION_WINDOW_MS || !this.byId.has(keyId)) this.recent429.delete(keyId);
    }
    const n = this.recent429.size;
    if (n < 2 || n * 2 <= this.records.length) return false;
    let shortest: number | null = null;
    for (const [keyId, r] of this.recent429) {
      const rec = this.byId.get(keyId)!;
      rec.block = r.prior.block;
      rec.backoffLevel = r.prior.backoffLevel;
      rec.probe = r.prior.probe;
      this.touch(rec);
      this.place(rec, now);
      if (r.retryAfterMs !== null) shortest = shortest === null ? r.retryAfterMs : Math.min(shortest, r.retryAfterMs);
    }
    const until = now + (shortest ?? DEFAULT_POOL_THROTTLE_MS);
    this.throttle = { until, reason: `${n} of ${this.records.length} keys reported 429 within ${CORRELATION_WINDOW_MS / 1000}s` };
    this.recent429.clear();
    this.emit({ type: 'pool_throttled', pool: this.name, until, keys: n });
    this.dirty();
    return true;
  }

  // ---------------------------------------------------------------- admin

  /** Disables a key by hand; it stays out until enabled (or its line changes). */
  disable(keyId: string, reason: string, now: number): boolean {
    const rec = this.byId.get(keyId);
    if (!rec) return false;
    rec.disabled = { reason, lineHash: rec.lineHash };
    this.place(rec, now);
    this.touch(rec);
    return true;
  }

  /** Clears disable, block, probe and failure state. */
  enable(keyId: string, now: number): boolean {
    const rec = this.byId.get(keyId);
    if (!rec) return false;
    rec.disabled = null;
    rec.block = null;
    rec.exhausted = null;
    rec.probe = null;
    rec.failures = [];
    rec.backoffLevel = 0;
    this.place(rec, now);
    this.touch(rec);
    return true;
  }

  /** Zeroes a key's served counters (all windows and total). */
  resetCounters(keyId: string, now: number): boolean {
    const rec = this.byId.get(keyId);
    if (!rec) return false;
    rec.windows = {};
    rec.total = 0;
    rec.exhausted = null;
    this.place(rec, now);
    this.touch(rec);
    return true;
  }

  // ---------------------------------------------------------------- persistence

  private persistable(rec: KeyState): KeyState {
    const out: KeyState = {
      windows: copyWindows(rec.windows),
      total: rec.total,
      lastUsedAt: rec.lastUsedAt,
      block: rec.block,
      exhausted: rec.exhausted,
      disabled: rec.disabled,
      failures: [...rec.failures],
      backoffLevel: rec.backoffLevel,
      probe: rec.probe,
    };
    if (rec.removedAt !== undefined) out.removedAt = rec.removedAt;
    return out;
  }

  /**
   * The pool's persisted state as JSON text (state format 2, see keyEntryJson), in pieces of up
   * to `batch` keys, so a saver can write a 100,000-key pool while the event loop keeps serving
   * between pieces. Read back by deserializeState, it gives `snapshot()` as of `now` (counts of
   * windows that ended read as none).
   */
  *serializeChunks(now: number, batch = 200): Generator<string> {
    // Everything is written from here on; what changes meanwhile goes to the next save.
    this.takeChanged();
    this.needsFull = false;
    yield* this.serializeRecords(now, this.records, [...this.retired], batch);
  }

  /**
   * Like serializeChunks, but only the keys changed since the last save began: a journal entry
   * that, applied over the last snapshot, gives the current state. Callers check
   * `fullSaveNeeded` first (membership changes are not expressible as a delta).
   */
  *serializeDelta(now: number, batch = 200): Generator<string> {
    yield* this.serializeRecords(now, this.takeChanged(), [], batch);
  }

  /** The records changed since the last call, and a fresh list for what changes next. */
  private takeChanged(): KeyRecord[] {
    const changed = this.changed;
    this.changed = [];
    for (const rec of changed) rec.changed = false;
    return changed;
  }

  private *serializeRecords(now: number, records: readonly KeyRecord[], retired: Array<[string, KeyState]>, batch: number): Generator<string> {
    const windowStarts: WindowStarts = {
      minute: this.clock.bounds('minute', now).startMs,
      hour: this.clock.bounds('hour', now).startMs,
      day: this.clock.bounds('day', now).startMs,
      month: this.clock.bounds('month', now).startMs,
    };
    const header: Omit<PoolState, 'keys'> & { windowStarts: WindowStarts } = {
      current: this.records[this.current]?.keyId ?? null,
      servedInTurn: this.servedInTurn,
      poolWindow: this.poolWindow,
      throttle: this.throttle,
      history: this.history,
      windowStarts,
    };
    const head = JSON.stringify(header);
    yield `${head.slice(0, -1)},"keys":{`;
    let first = true;
    let parts: string[] = [];
    const flush = () => {
      const text = parts.join(',');
      const out = first || text === '' ? text : `,${text}`;
      if (text !== '') first = false;
      parts = [];
      return out;
    };
    for (const [keyId, st] of retired) {
      parts.push(keyEntryJson(keyId, st, windowStarts));
      if (parts.length >= batch) yield flush();
    }
    for (const rec of records) {
      parts.push(keyEntryJson(rec.keyId, rec, windowStarts));
      if (parts.length >= batch) yield flush();
    }
    yield `${flush()}}}`;
  }

  /** Serialisable state, keyed by keyId. */
  snapshot(): PoolState {
    const keys: Record<string, KeyState> = {};
    for (const [keyId, st] of this.retired) keys[keyId] = st;
    for (const rec of this.records) keys[rec.keyId] = this.persistable(rec);
    return {
      current: this.records[this.current]?.keyId ?? null,
      servedInTurn: this.servedInTurn,
      poolWindow: this.poolWindow,
      throttle: this.throttle,
      history: this.history.map((c) => ({ ...c })),
      keys,
    };
  }

  /** Restores a snapshot (already validated by state.ts) onto the current keys. */
  restore(state: PoolState, now: number): void {
    this.needsFull = true;
    this.retired.clear();
    for (const [keyId, st] of Object.entries(state.keys)) {
      const rec = this.byId.get(keyId);
      if (rec) {
        rec.assign(st);
        if (rec.disabled && rec.disabled.lineHash !== rec.lineHash) rec.disabled = null;
      } else {
        this.retired.set(keyId, { ...this.persistable(st), removedAt: st.removedAt ?? now });
      }
    }
    this.current = state.current === null ? -1 : (this.byId.get(state.current)?.slot ?? -1);
    this.servedInTurn = this.current === -1 ? 0 : state.servedInTurn;
    this.poolWindow = state.poolWindow;
    this.throttle = state.throttle;
    this.history = state.history.map((c) => ({ ...c }));
    this.rebuildIndexes(now);
  }

  // ---------------------------------------------------------------- forecast

  private recordHandout(now: number, count: number): void {
    const start = this.clock.bounds('minute', now).startMs;
    const last = this.history[this.history.length - 1];
    if (last?.start === start) last.count += count;
    else this.history.push({ start, count });
    this.pruneHistory(now);
  }

  private pruneHistory(now: number): void {
    const oldest = now - FORECAST_WINDOW_MS;
    while (this.history.length > 0 && this.history[0]!.start + 60_000 <= oldest) this.history.shift();
  }

  /** Handouts per millisecond over the last hour (or since handouts began, at least a minute). */
  private ratePerMs(now: number): number {
    this.pruneHistory(now);
    const first = this.history[0];
    if (!first) return 0;
    const total = this.history.reduce((n, c) => n + c.count, 0);
    const spanMs = Math.min(FORECAST_WINDOW_MS, Math.max(60_000, now - first.start));
    return total / spanMs;
  }

  /**
   * When the pool runs dry at the last hour's rate: for each configured limit, the quota the
   * keys have left in its current window (keys that are disabled, expired or reported exhausted
   * count nothing; blocked keys are assumed to come back) divided by the rate. Null when no limit
   * runs out before its window resets, or nothing is being handed out.
   */
  private forecast(now: number): number | null {
    const rate = this.ratePerMs(now);
    if (rate <= 0) return null;
    const limits = this.policy.limits;
    const bounded: Array<[keyof Limits, WindowKind | null]> = [...LIMIT_WINDOWS, ['total', null]];
    let soonest: number | null = null;
    for (const [name, kind] of bounded) {
      const limit = limits[name];
      if (limit === undefined) continue;
      let left = 0;
      for (const rec of this.records) {
        if (rec.disabled || rec.exhausted || (rec.expiresAt !== null && now >= rec.expiresAt)) continue;
        left += Math.max(0, limit - (kind === null ? rec.total : this.count(rec, kind, now)));
      }
      const dryAt = now + Math.ceil(left / rate);
      const resetAt = kind === null ? Infinity : this.clock.bounds(kind, now).endMs;
      if (dryAt < resetAt && (soonest === null || dryAt < soonest)) soonest = dryAt;
    }
    return soonest;
  }

  // ---------------------------------------------------------------- stats

  private servedCounts(rec: KeyRecord, now: number): ServedCounts {
    return {
      minute: this.count(rec, 'minute', now),
      hour: this.count(rec, 'hour', now),
      day: this.count(rec, 'day', now),
      month: this.count(rec, 'month', now),
      total: rec.total,
    };
  }

  /** Stats for `/api/stats`, masked. `keyFile` is filled in by the caller. */
  stats(now: number, options: { keys: KeyRows } = { keys: 'all' }): Omit<PoolStats, 'keyFile'> {
    const counts: Record<KeyStatus, number> = { available: 0, probing: 0, exhausted: 0, blocked: 0, disabled: 0, expired: 0 };
    let usableCount = 0;
    const keys: KeyStats[] = [];
    this.wakeDue(now);
    for (const rec of this.records) {
      this.settle(rec, now);
      const ev = this.evaluate(rec, now);
      counts[ev.status]++;
      if (ev.usable) usableCount++;
      if (options.keys === 'all' || (options.keys === 'out' && ev.status !== 'available')) {
        keys.push({
          keyId: rec.keyId,
          masked: rec.masked,
          status: ev.status,
          reason: ev.reason,
          until: ev.until,
          served: this.servedCounts(rec, now),
          remaining: this.limitsLeft(rec, now),
          blockedUntil: rec.block?.until ?? null,
          failures: recentFailures(rec.failures, now, this.policy.failureWindowSec * 1000).length,
          lastUsedAt: rec.lastUsedAt,
          expiresAt: rec.expiresAt,
        });
      }
    }
    const cur = this.records[this.current];
    const current: CurrentKeyStats | null = cur ? { keyId: cur.keyId, masked: cur.masked, remaining: this.remainingOf(cur, now) } : null;
    const throttledUntil = this.throttle && now < this.throttle.until ? this.throttle.until : null;
    return {
      name: this.name,
      strategy: this.policy.strategy,
      total: this.records.length,
      available: usableCount,
      probing: counts.probing,
      exhausted: counts.exhausted,
      blocked: counts.blocked,
      disabled: counts.disabled,
      expired: counts.expired,
      current,
      throttledUntil,
      exhaustsAt: this.forecast(now),
      keys,
    };
  }
}
