import type { Credits, KeyStatus, PoolStats } from '../../shared/stats.js';
import type { PinLimits } from './pins.js';
import type { PoolPolicy } from './policy.js';
import type { PoolState } from './records.js';
import type { Activity, HistoryRange, HistorySeries } from './activity.js';
import type { AdminAction, Outcome, ReportInput, UpstreamFinding } from './rules.js';
import type { AppUsage, BudgetWindow, Spender } from './budgets.js';
import type { KeyRows } from './stats.js';

/**
 * One usable line of a key file (keys/keyfile.ts reads them). `key` is plaintext: it never leaves the
 * pool except in a handout.
 */
export interface KeyLine {
  key: string;
  /** 1-based line number in the file. */
  line: number;
  /** Hash of the whole trimmed line, so "the key's line changed" can be told without storing it. */
  lineHash: string;
  /** From an inline `# expires=YYYY-MM-DD[THH:MM[:SS]Z]` comment, epoch ms; null when absent. */
  expiresAt: number | null;
}

export type Handout =
  | { ok: true; key: string; keyId: string; remaining: number | null; granted: number }
  | { ok: false; reason: 'no_key_available' | 'pool_rate_limited' | 'pool_throttled'; retryAfterMs: number | null }
  /** The app's budget in the pool would be passed: nothing was handed out (budgets.ts budgetHit). */
  | { ok: false; reason: 'app_budget_exhausted'; retryAfterMs: number; window: BudgetWindow; limit: number };

/**
 * What a pool that keeps reservations (see records.ts KeyState.reserved) answers when the key it
 * picked has no durable reservation covering the uses: the registry makes the pending
 * reservations durable (`reserve`) and asks again. Never reaches a caller.
 */
export type HandoutAttempt = Handout | { ok: false; reason: 'reserving'; retryAfterMs: null };

/** A key's status as a handout would see it, and its total served. */
export interface KeyNow {
  status: KeyStatus;
  total: number;
}

export type ReportResult = { ok: true; outcome: Outcome } | { ok: false; reason: 'unknown_key' };

/**
 * One upstream check of a key as a pool records it: what the upstream said (`reached`), or why
 * it could not be asked, which changes no key and only shows in the pool's `upstreamSync`.
 * `viaProxy`: read off an answer the proxy passed on, not a sync (the pool's `upstreamSync`,
 * which tells how the syncs go, stays as it was). `servedBefore`: the key's total when the
 * upstream was asked (what was handed out since is added to the upstream's count of what it used).
 */
export type UpstreamCheck =
  | {
      reached: true;
      keyId: string;
      finding: UpstreamFinding;
      credits: Credits | null;
      viaProxy?: boolean;
      servedBefore?: number;
      /** Numbers of the answer that were no counts of credits, read as unknown (e.g. `remaining.day -5`). */
      ignored?: string[];
    }
  | { reached: false; error: string };

/**
 * What recording a check did: `found` false for a key the pool no longer has; `revived` when it lifted
 * the key's upstream hold.
 */
export interface UpstreamRecorded {
  found: boolean;
  revived: boolean;
}

export interface ReloadSummary {
  added: number;
  removed: number;
  kept: number;
  reenabled: number;
}

export type PoolEvent =
  | { type: 'rotate'; pool: string; from: string | null; to: string; why: 'turn' | 'unavailable' }
  | { type: 'key_out'; pool: string; keyId: string; status: KeyStatus; reason: string; until: number | null }
  | { type: 'pool_throttled'; pool: string; until: number; keys: number }
  | { type: 'pins_evicted'; pool: string; count: number };

/** What a backend's pool factory is given besides the name and policy. */
export interface PoolOptions {
  rng?: () => number;
  /** How long pins last and how many a pool keeps (pins.ts). */
  pinLimits?: PinLimits;
  onEvent?: (e: PoolEvent) => void;
  /** The pool's history, which the registry records into; the backend keeps it with the pool's state. */
  activity?: Activity;
}

/**
 * What the registry needs of a pool, whichever backend holds its state: `Pool` (in memory, saved
 * to the state file) or `RedisPool` (in Redis, shared by instances). Both apply rules.ts.
 */
export interface PoolBackend {
  readonly name: string;
  readonly policy: PoolPolicy;
  readonly size: number;
  setKeys(lines: readonly KeyLine[], now: number): ReloadSummary | Promise<ReloadSummary>;
  /**
   * A handout of `want` uses; `spender`: the app it is for, charged and held to its budget (budgets.ts).
   * `block`: a lease (redis/leases.ts), which takes up to `block` uses at once (rules.ts leaseSize).
   */
  handout(now: number, want?: number, spender?: Spender, block?: number): HandoutAttempt | Promise<HandoutAttempt>;
  report(input: ReportInput, now: number): ReportResult | Promise<ReportResult>;
  /** Lifts a pool-wide throttle (and forgets the recent 429s behind it); true when one was in force. */
  clearThrottle(now: number): boolean | Promise<boolean>;
  /** Records an upstream check: the key's verdict and credits, and the pool's `upstreamSync`. */
  recordUpstream(check: UpstreamCheck, now: number): UpstreamRecorded | Promise<UpstreamRecorded>;
  /**
   * Changes by `delta` the uses counted for `keyId` at `at`: a proxied create the upstream did not
   * charge gives its uses back (negative), a report that a call cost more credits adds the rest.
   * The total changes, and every window `at` falls in that is still current (never below zero).
   * False for an unknown key. `app`: the app the uses were charged to, whose ledger changes alike.
   */
  recount(keyId: string, delta: number, at: number, now: number, app?: string): boolean | Promise<boolean>;
  /** What each app spent in the pool (budgets.ts usageOf), by app name. */
  appUsage(now: number): Record<string, AppUsage> | Promise<Record<string, AppUsage>>;
  /** Each of `keyIds` as a handout would see it, and its total served (null: not in the pool); changes nothing. */
  keyStatus(keyIds: readonly string[], now: number): Array<KeyNow | null> | Promise<Array<KeyNow | null>>;
  /** The keyId identification `ref` is pinned to (null: none, or expired). */
  pinned(ref: string, now: number): string | null | Promise<string | null>;
  /** Pins each of `refs` to `keyId`. */
  pin(refs: readonly string[], keyId: string, now: number): void | Promise<void>;
  /** How many pins the pool holds. */
  pinCount(): number | Promise<number>;
  /** An operator's action on a key; false when the pool has no such key. */
  admin(action: AdminAction, keyId: string, now: number, reason?: string): boolean | Promise<boolean>;
  stats(
    now: number,
    options?: { keys: KeyRows },
  ): Omit<PoolStats, 'keyFile' | 'proxy'> | Promise<Omit<PoolStats, 'keyFile' | 'proxy'>>;
  /** The history behind the dashboard's charts (every instance's, with a shared backend). */
  activitySeries(range: HistoryRange, now: number): HistorySeries | Promise<HistorySeries>;
  /** The pool's state in the state file's shape (an export; keyIds only, never a key). */
  exportState(now: number): PoolState | Promise<PoolState>;
  /** Puts a saved state (an export, a state file) in the place of the pool's; membership stays the key file's. */
  replaceState(state: PoolState, now: number): void | Promise<void>;
}

/**
 * Makes a pool anew under a changed policy (pools.json edited live): with `lines` as its keys and
 * what the old one held, handed to `install` the moment it is whole. The state backend's.
 */
export type ReplacePool = (
  old: PoolBackend,
  name: string,
  policy: PoolPolicy,
  options: PoolOptions,
  lines: readonly KeyLine[],
  install: (pool: PoolBackend) => void,
) => void | Promise<void>;

/**
 * The state backend cannot be reached (Redis down): callers answer 503 with a short Retry-After.
 * `detail` (the driver's error) is for logs, never for clients.
 */
export class StateUnavailableError extends Error {
  readonly detail: string;

  constructor(cause: unknown) {
    super('the state backend is unavailable; retry shortly');
    this.name = 'StateUnavailableError';
    this.detail = `state backend unavailable: ${(cause as Error)?.message ?? String(cause)}`;
  }
}
