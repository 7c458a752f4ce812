/**
 * Apps' budgets in a pool: what an app may spend per day, week and month, counted as the pool
 * counts (the uses a handout grants: credits in Kindwise pools, handouts elsewhere), and what it
 * spent. The same rules as a key's limits, kept beside them: pure functions over a ledger, the
 * ones marked "Mirrored" also in redis/apps.lua under the same names (the mirror test checks), so
 * both engines hold an app to its budget inside the pool's one atomic operation.
 */
import type { WindowClock } from './windows.js';

export type BudgetWindow = 'day' | 'week' | 'month';
export const BUDGET_WINDOWS: readonly BudgetWindow[] = ['day', 'week', 'month'];

/** Uses an app may spend per window in one pool; a window left out is not limited. */
export type Budget = Partial<Record<BudgetWindow, number>>;

/** Who a handout is for: an app's name, and its budget in the pool (null: none, only counted). */
export interface Spender {
  app: string;
  budget: Budget | null;
}

/** What a pool keeps per app: its usage, and (the file backend) the uses durably reserved. */
export interface AppLedger {
  /** Handouts (each proxied create is one), whatever each granted. */
  handouts: number;
  /** Uses spent in all. */
  spent: number;
  /** Each window's start and count (the count of an older window is no count now). */
  windows: Partial<Record<BudgetWindow, { start: number; count: number }>>;
  lastSeenAt: number | null;
  /** The file backend's durable reservation of `spent` (see KeyState.reserved); absent after a clean stop. */
  reserved?: number;
}

/** An app's usage in a pool as stats show it: the counts of the windows current now. */
export interface AppUsage {
  handouts: number;
  credits: Record<BudgetWindow | 'total', number>;
  lastSeenAt: number | null;
}

export function emptyLedger(): AppLedger {
  return { handouts: 0, spent: 0, windows: {}, lastSeenAt: null };
}

/** Mirrored. An app's count in the current window of `kind`. */
export function spentIn(ledger: AppLedger, kind: BudgetWindow, clock: WindowClock, now: number): number {
  const w = ledger.windows[kind];
  return w !== undefined && w.start === clock.bounds(kind, now).startMs ? w.count : 0;
}

/**
 * Mirrored. The budget window `want` more uses would pass, with when it resets (the longest of
 * those passed), or null when the budget allows them. All or nothing: a budget is never cut into,
 * so an app is never charged past it, not even by a lease or a create that costs two.
 */
export function budgetHit(
  ledger: AppLedger,
  budget: Budget | null,
  want: number,
  clock: WindowClock,
  now: number,
): { window: BudgetWindow; limit: number; until: number } | null {
  if (budget === null) return null;
  let hit: { window: BudgetWindow; limit: number; until: number } | null = null;
  for (const kind of BUDGET_WINDOWS) {
    const limit = budget[kind];
    if (limit === undefined || spentIn(ledger, kind, clock, now) + want <= limit) continue;
    const until = clock.bounds(kind, now).endMs;
    if (hit === null) hit = { window: kind, limit, until };
    else hit.until = Math.max(hit.until, until);
  }
  return hit;
}

/** Mirrored. Uses the budget has left in its tightest window; null when it has none. */
export function budgetLeft(ledger: AppLedger, budget: Budget | null, clock: WindowClock, now: number): number | null {
  if (budget === null) return null;
  let left: number | null = null;
  for (const kind of BUDGET_WINDOWS) {
    const limit = budget[kind];
    if (limit === undefined) continue;
    const l = Math.max(0, limit - spentIn(ledger, kind, clock, now));
    left = left === null ? l : Math.min(left, l);
  }
  return left;
}

/** Mirrored. A handout of `granted` uses charged to the app. */
export function chargeApp(ledger: AppLedger, granted: number, clock: WindowClock, now: number): void {
  for (const kind of BUDGET_WINDOWS) {
    const start = clock.bounds(kind, now).startMs;
    const w = ledger.windows[kind];
    ledger.windows[kind] = { start, count: (w?.start === start ? w.count : 0) + granted };
  }
  ledger.spent += granted;
  ledger.handouts++;
  ledger.lastSeenAt = now;
}

/**
 * Mirrored. Uses made at `at` counted again by `delta` (a create the upstream did not charge
 * gives them back, a call that cost more adds the rest): the total, and each window `at` falls in
 * that is still current, never below zero.
 */
export function recountApp(ledger: AppLedger, delta: number, at: number, clock: WindowClock, now: number): void {
  for (const kind of BUDGET_WINDOWS) {
    const start = clock.bounds(kind, at).startMs;
    if (start !== clock.bounds(kind, now).startMs) continue;
    const w = ledger.windows[kind];
    ledger.windows[kind] = { start, count: Math.max(0, (w?.start === start ? w.count : 0) + delta) };
  }
  ledger.spent = Math.max(0, ledger.spent + delta);
}

/** An app's usage as stats show it. */
export function usageOf(ledger: AppLedger, clock: WindowClock, now: number): AppUsage {
  return {
    handouts: ledger.handouts,
    credits: {
      day: spentIn(ledger, 'day', clock, now),
      week: spentIn(ledger, 'week', clock, now),
      month: spentIn(ledger, 'month', clock, now),
      total: ledger.spent,
    },
    lastSeenAt: ledger.lastSeenAt,
  };
}

/**
 * How many uses of an app's budget the file backend reserves ahead at a time: 1/50 of its
 * smallest window (at least 1), as reservationBlock does for a key's limits.
 */
export function budgetBlock(budget: Budget): number {
  const values = BUDGET_WINDOWS.map((k) => budget[k]).filter((v): v is number => v !== undefined);
  return values.length === 0 ? 0 : Math.max(1, Math.min(10_000, Math.floor(Math.min(...values) / 50)));
}
