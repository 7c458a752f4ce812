import type { SavedPin } from './pins.js';
import type { UpstreamSyncStats } from '../../shared/stats.js';
import {
  isDefault,
  KEY_FIELDS,
  recordValue,
  RULE_FIELDS,
  type Hold,
  type KeyFields,
  type RuleFields,
} from './fields.js';
export type { Disabled, Hold, UpstreamHold } from './fields.js';
import type { SavedActivity } from './activity.js';
import type { AppLedger } from './budgets.js';
import { WINDOW_KINDS, type WindowKind } from './windows.js';

export interface Counter {
  start: number;
  count: number;
}

/**
 * What is persisted per key (keyed by keyId); no plaintext key. Its counters, then the fields of
 * the field table (fields.ts), where each is described.
 */
export interface KeyState extends KeyFields {
  windows: Partial<Record<WindowKind, Counter>>;
  total: number;
  lastUsedAt: number | null;
}

export interface PoolState {
  current: string | null;
  servedInTurn: number;
  poolWindow: Counter | null;
  throttle: Hold | null;
  /** Handouts per UTC minute over the last hour, oldest first: the forecast's rate. */
  history: Counter[];
  /** The last handout sequence number and the last first-seen number (see KeyState.useSeq). */
  seq?: { used: number; seen: number };
  /** The pool's last upstream check (absent: none yet). */
  upstreamSync?: UpstreamSyncStats | null;
  /** The dashboard's history: counts per minute for a day, per hour for a week (absent: none kept). */
  activity?: SavedActivity;
  /**
   * Identifications pinned to the key that made them (pins.ts); in a journal entry only what changed,
   * null for a dropped one.
   */
  pins?: Record<string, SavedPin | null>;
  /** What each app spent in the pool (budgets.ts), by app name (absent: none yet). */
  apps?: Record<string, AppLedger>;
  keys: Record<string, KeyState>;
}

/**
 * What the rules (rules.ts) read and change of a key: the table's rule fields (fields.ts), its
 * counters (through `countIn`, so a record may keep them anywhere) and what its key-file line says.
 */
export interface RuleRecord extends RuleFields {
  total: number;
  lastUsedAt: number | null;
  readonly lineHash: string;
  readonly expiresAt: number | null;
  /** The count of window kind `k` (its index in WINDOW_KINDS) if that window started at `start`, else 0. */
  countIn(k: number, start: number): number;
}

/** A new key's state: no counts, every field at its default. */
export function emptyKeyState(): KeyState {
  const state: Record<string, unknown> = { windows: {}, total: 0, lastUsedAt: null };
  for (const f of KEY_FIELDS) if (!f.optional) state[f.name] = recordValue(f, undefined);
  return state as unknown as KeyState;
}

/** Carries the table's rule fields (RuleFields) for both kinds of record, and takes them from a persisted state. */
class FieldHolder {
  /** Takes a persisted state's rule fields, each at its default where the state has none; lists as copies. */
  takeFields(state: Partial<KeyFields>): void {
    const self = this as unknown as Record<string, unknown>;
    const from = state as Record<string, unknown>;
    for (const f of RULE_FIELDS) self[f.name] = recordValue(f, from[f.name]);
  }

  /** The rule fields a persisted state writes: required ones always, optional ones when not at their default. */
  putFields(state: Record<string, unknown>): void {
    const self = this as unknown as Record<string, unknown>;
    for (const f of RULE_FIELDS) {
      const v = self[f.name];
      if (!f.optional || !isDefault(f, v)) state[f.name] = Array.isArray(v) ? [...(v as unknown[])] : v;
    }
  }
}
/** FieldHolder as the type its instances have once takeFields ran: the fields come from the table, not declarations. */
const WithRuleFields = FieldHolder as unknown as new () => FieldHolder & RuleFields;

/**
 * Numbers a pool keeps per key in one Float64Array, `STRIDE` apiece in slot order: total,
 * lastUsedAt (NaN: never), then the start (NaN: none) and count of each window in WINDOW_KINDS
 * order. Kept out of the records because a big round-robin pool updates them on every handout
 * and reads them again at every save: as fields and objects of their own (a windows object, four
 * counters, a heap number per timestamp) they were ten objects a key scattered over the heap,
 * all for the garbage collector to trace; in a table they are 80 bytes in a row, off the heap.
 */
export const STRIDE = 2 + 2 * WINDOW_KINDS.length;
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
export class KeyRecord extends WithRuleFields implements KeyState, RuleRecord {
  useSeq = 0;
  /**
   * Uses a durable save covers (see KeyState.reserved); a handout never takes total past it when the
   * pool keeps reservations.
   */
  reserved = 0;
  /** The reservation the next save writes: at least `reserved`; above it while one is pending. */
  reserveTo = 0;
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
    super();
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

  countIn(k: number, start: number): number {
    const i = this.at + FIRST_WINDOW + 2 * k;
    return this.nums[i] === start ? this.nums[i + 1]! : 0;
  }

  /** Sets the count of window kind `k`, which started at `start`, to `n`. */
  setCount(k: number, start: number, n: number): void {
    const i = this.at + FIRST_WINDOW + 2 * k;
    this.nums[i] = start;
    this.nums[i + 1] = n;
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

  /** Takes over a persisted state (construction, restore); useSeq only where the state has one. */
  assign(state: KeyState): void {
    this.windows = state.windows;
    this.total = state.total;
    this.lastUsedAt = state.lastUsedAt;
    this.takeFields(state);
    if (state.useSeq !== undefined) this.useSeq = state.useSeq;
    this.reserved = this.reserveTo = Math.max(state.total, state.reserved ?? 0);
  }

  /** The persisted state (a copy: it never shares counters or lists with the record). */
  toState(): KeyState {
    const state: Record<string, unknown> = { windows: this.windows, total: this.total, lastUsedAt: this.lastUsedAt };
    this.putFields(state);
    state.useSeq = this.useSeq;
    if (this.reserveTo > this.total) state.reserved = this.reserveTo;
    return state as unknown as KeyState;
  }
}

/**
 * A persisted KeyState read as a RuleRecord (stats of state read back from Redis, retired keys):
 * the same rules then apply to it as to a live KeyRecord.
 */
export class StateRecord extends WithRuleFields implements RuleRecord {
  total: number;
  lastUsedAt: number | null;
  private readonly starts: number[];
  private readonly counts: number[];

  constructor(
    state: KeyState,
    readonly keyId: string,
    readonly masked: string,
    readonly lineHash: string,
    readonly expiresAt: number | null,
  ) {
    super();
    this.takeFields(state);
    this.total = state.total;
    this.lastUsedAt = state.lastUsedAt;
    this.starts = WINDOW_KINDS.map((kind) => state.windows[kind]?.start ?? NaN);
    this.counts = WINDOW_KINDS.map((kind) => state.windows[kind]?.count ?? 0);
  }

  countIn(k: number, start: number): number {
    return this.starts[k] === start ? this.counts[k]! : 0;
  }
}
