import type { HandoutAttempt } from './contract.js';
import {
  budgetBlock,
  budgetHit,
  budgetLeft,
  emptyLedger,
  usageOf,
  type AppLedger,
  type AppUsage,
  type Budget,
  type Spender,
} from './budgets.js';
import type { WindowClock } from './windows.js';

/** A ledger as the in-memory pool keeps it: with the reservation asked for but not yet saved. */
export class LedgerRecord implements AppLedger {
  handouts = 0;
  spent = 0;
  windows: AppLedger['windows'] = {};
  lastSeenAt: number | null = null;
  reserved?: number;
  reserveTo = 0;

  constructor(saved: AppLedger = emptyLedger()) {
    this.handouts = saved.handouts;
    this.spent = saved.spent;
    this.windows = { ...saved.windows };
    this.lastSeenAt = saved.lastSeenAt;
  }
}

type Refusal = Extract<HandoutAttempt, { ok: false }>;

/**
 * The apps' ledgers of one in-memory pool, and their durable reservations (the file backend's,
 * as Reservations keeps them for keys): a budgeted app spends only uses a save has reserved, so a
 * crash can count reserved uses as spent (state/reservations.ts) and never lets an app past its
 * budget. Synchronous, like the pool.
 */
export class AppLedgers {
  private readonly ledgers = new Map<string, LedgerRecord>();
  /** The reservations the last save carried, confirmed when it lands (`saved`). */
  private written: Array<[LedgerRecord, number]> = [];

  constructor(
    /** Keep durable reservations (the file backend). */
    private readonly reserves: boolean,
    /** A reservation is wanted: the backend saves soon. */
    private readonly wantSave: () => void,
  ) {}

  of(app: string): LedgerRecord {
    let l = this.ledgers.get(app);
    if (!l) this.ledgers.set(app, (l = new LedgerRecord()));
    return l;
  }

  /**
   * Before a handout of `want` for `spender`: its ledger, or why nothing may be handed out (the
   * budget would be passed; or its uses need a save first, which is asked for).
   */
  admit(spender: Spender, want: number, clock: WindowClock, now: number): LedgerRecord | Refusal {
    const l = this.of(spender.app);
    const hit = budgetHit(l, spender.budget, want, clock, now);
    if (hit)
      return {
        ok: false,
        reason: 'app_budget_exhausted',
        retryAfterMs: hit.until - now,
        window: hit.window,
        limit: hit.limit,
      };
    if (this.needsSave(l, spender.budget, want, clock, now))
      return { ok: false, reason: 'reserving', retryAfterMs: null };
    return l;
  }

  /**
   * Whether `want` more uses need a save first; when they do, the reservation is asked for (a
   * block beyond, never past what the budget has left). Each waiting request adds what it wants,
   * so one save covers them all.
   */
  private needsSave(l: LedgerRecord, budget: Budget | null, want: number, clock: WindowClock, now: number): boolean {
    if (!this.reserves || budget === null || l.spent + want <= (l.reserved ?? 0)) return false;
    this.reserve(l, budget, Math.max(l.spent + want + budgetBlock(budget), l.reserveTo + want), clock, now);
    return true;
  }

  /** After a charge: the next block is asked for while half of this one is left. */
  renew(l: LedgerRecord, budget: Budget | null, clock: WindowClock, now: number): void {
    if (!this.reserves || budget === null) return;
    const block = budgetBlock(budget);
    if (((l.reserved ?? 0) - l.spent) * 2 <= block) this.reserve(l, budget, l.spent + block, clock, now);
  }

  private reserve(l: LedgerRecord, budget: Budget, target: number, clock: WindowClock, now: number): void {
    const cap = l.spent + (budgetLeft(l, budget, clock, now) ?? Infinity);
    const to = Math.min(target, cap);
    if (to <= l.reserveTo) return;
    l.reserveTo = to;
    this.wantSave();
  }

  /**
   * The ledgers as a save writes them, with the reservations asked for (none at a clean stop,
   * `final`), which `saved` confirms once the save has landed.
   */
  save(final: boolean): Record<string, AppLedger> {
    this.written = [];
    const out = this.copy();
    if (!final)
      for (const [app, l] of this.ledgers)
        if (l.reserveTo > l.spent) {
          this.written.push([l, l.reserveTo]);
          out[app]!.reserved = l.reserveTo;
        }
    return out;
  }

  /** The ledgers as plain values (an export: nothing reserved ahead). */
  copy(): Record<string, AppLedger> {
    const out: Record<string, AppLedger> = {};
    for (const [app, l] of this.ledgers)
      out[app] = { handouts: l.handouts, spent: l.spent, windows: { ...l.windows }, lastSeenAt: l.lastSeenAt };
    return out;
  }

  /** The last save landed: its reservations may be spent. */
  saved(): void {
    for (const [l, to] of this.written) if (to > (l.reserved ?? 0)) l.reserved = to;
    this.written = [];
  }

  /** Takes saved ledgers (their reservations already counted as spent after a crash). */
  load(saved: Record<string, AppLedger> | undefined): void {
    this.ledgers.clear();
    this.written = [];
    for (const [app, l] of Object.entries(saved ?? {})) this.ledgers.set(app, new LedgerRecord(l));
  }

  usage(clock: WindowClock, now: number): Record<string, AppUsage> {
    const out: Record<string, AppUsage> = {};
    // An app that asked but never spent here (or only gave back) is not listed; nor is it by Redis.
    for (const [app, l] of this.ledgers) if (l.handouts > 0 || l.spent > 0) out[app] = usageOf(l, clock, now);
    return out;
  }
}
