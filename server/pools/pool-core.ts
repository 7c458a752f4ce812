import { keyIdOf, maskKey } from '../../shared/keys.js';
import type { UpstreamSyncStats } from '../../shared/stats.js';
import type {
  Handout,
  HandoutAttempt,
  KeyLine,
  PoolEvent,
  PoolOptions,
  ReloadSummary,
  ReportResult,
} from './contract.js';
import { ChangeTracker } from './changes.js';
import { AppLedgers, LedgerRecord } from './app-ledgers.js';
import { budgetLeft, chargeApp, recountApp, type AppUsage, type Spender } from './budgets.js';
import { recordHandout } from './forecast.js';
import { recountKey, recountMinute } from './counts.js';
import { reservationBlock, type PoolPolicy } from './policy.js';
import { emptyKeyState, KeyRecord, STRIDE, type Counter, type KeyState } from './records.js';
import {
  applyAdmin,
  applyReport,
  compileLimits,
  evaluate,
  grant,
  leaseSize,
  limitsLeft,
  readReport,
  remainingAfter,
  settle,
  type AdminAction,
  type CompiledLimits,
  type Evaluation,
  type ReportInput,
} from './rules.js';
import { Reservations } from './reservations.js';
import { Selection } from './selection.js';
import { PoolThrottle } from './throttle.js';
import { UseOrder } from './use-order.js';
import { WINDOW_KINDS, WindowClock } from './windows.js';

/**
 * The in-memory pool's rules at work (see Pool, which adds what it saves and shows): membership,
 * handouts, reports, refunds and reservations around the rules of rules.ts, with its selection
 * indexes in selection.ts (so a handout is O(log n) amortised in the pool size). Synchronous:
 * every method takes `now`; callers serialise access with the pool's mutex.
 */
export abstract class PoolCore {
  readonly clock: WindowClock;
  readonly limits: CompiledLimits;
  protected records: KeyRecord[] = [];
  protected byId = new Map<string, KeyRecord>();
  protected retired = new Map<string, KeyState>();
  protected readonly selection: Selection;
  protected current = -1;
  protected servedInTurn = 0;
  protected poolWindow: Counter | null = null;
  protected readonly throttle = new PoolThrottle();
  protected history: Counter[] = [];
  protected upstreamSync: UpstreamSyncStats | null = null;
  protected readonly useOrder = new UseOrder();
  /** What the next save must carry (state/file-backend.ts reads it). */
  readonly changes = new ChangeTracker<KeyRecord>();

  /** Durable reservations ahead of handouts (the file backend's; none elsewhere). */
  protected readonly reservations: Reservations;
  /** What each app spent here, held to its budget (budgets.ts). */
  protected readonly apps: AppLedgers;

  constructor(
    readonly name: string,
    readonly policy: PoolPolicy,
    protected readonly options: PoolOptions & {
      /** Keep durable reservations ahead of handouts (the file backend): no key over its limits even across a crash. */
      reservations?: boolean;
    } = {},
  ) {
    this.clock = new WindowClock(policy.resetTimezone);
    this.limits = compileLimits(policy.limits, policy.upstreamLimits);
    const block = options.reservations ? reservationBlock(policy.limits) : 0;
    this.reservations = new Reservations(block, policy.limits.total ?? null, this.changes);
    this.apps = new AppLedgers(options.reservations === true, () => {
      this.changes.dirty();
      this.changes.wantReservation();
    });
    this.selection = new Selection(policy.strategy, policy.rotateEvery, () => (options.rng ?? Math.random)());
  }

  /** A key left the pool (its file line went); what the subclass keeps for it goes too. */
  protected abstract removed(keyId: string): void;

  get size(): number {
    return this.records.length;
  }

  protected emit(e: PoolEvent): void {
    this.options.onEvent?.(e);
  }

  protected keyOut(rec: KeyRecord, ev: Evaluation): void {
    this.emit({
      type: 'key_out',
      pool: this.name,
      keyId: rec.keyId,
      status: ev.status,
      reason: ev.reason ?? ev.status,
      until: ev.until,
    });
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
      const base: KeyState = prior ?? retired ?? emptyKeyState();
      const rec = new KeyRecord(
        base,
        next.length,
        keyId,
        line.key,
        maskKey(line.key),
        line.lineHash,
        line.expiresAt,
        nums,
      );
      if (prior) rec.useSeq = prior.useSeq;
      else if (base.useSeq === undefined) rec.useSeq = this.useOrder.fresh(base);
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
        this.removed(old.keyId);
        this.retired.set(old.keyId, { ...old.toState(), removedAt: now });
      }
    }
    this.records = next;
    this.byId = nextById;
    this.reservations.reset(); // new records: none held
    this.changes.requireFull();
    this.current = currentKeyId === null ? -1 : (nextById.get(currentKeyId)?.slot ?? -1);
    if (this.current === -1) this.servedInTurn = 0;
    this.rebuildIndexes(now);
    if (summary.added || summary.removed || summary.reenabled) this.changes.dirty();
    return summary;
  }

  protected rebuildIndexes(now: number): void {
    this.selection.reset(this.records.length);
    for (const rec of this.records) this.place(rec, now);
  }

  // ---------------------------------------------------------------- evaluation

  /** Settles a record (rules.settle), listing it as changed when time moved it on. */
  protected settle(rec: KeyRecord, now: number): void {
    if (settle(rec, now)) this.changes.touch(rec);
  }

  /** Evaluates a record and records the verdict in the selection indexes (a key held for a save stays out). */
  protected place(rec: KeyRecord, now: number): Evaluation {
    this.settle(rec, now);
    const ev = evaluate(rec, this.limits, this.clock, now);
    if (ev.usable && !this.reservations.isHeld(rec)) this.selection.markUsable(rec.slot, rec.useSeq);
    else this.selection.markOut(rec.slot, ev.usable ? null : ev.until);
    return ev;
  }

  protected wakeDue(now: number): void {
    for (let slot = this.selection.popDue(now); slot !== undefined; slot = this.selection.popDue(now))
      this.place(this.records[slot]!, now);
  }

  // ---------------------------------------------------------------- handouts

  /**
   * Hands out the next usable key, or says why none is and when to retry. `want` > 1 asks for a
   * lease of several uses of one key (for client-side caching): all count as handouts now, and
   * the grant is cut to what the key's limits, the pool cap and a probe allow.
   */
  handout(now: number, want = 1, spender?: Spender, block = 0): HandoutAttempt {
    const throttle = this.throttle.hold;
    if (throttle) {
      if (now < throttle.until) return { ok: false, reason: 'pool_throttled', retryAfterMs: throttle.until - now };
      this.throttle.hold = null;
      this.changes.dirty();
    }
    const cap = this.policy.poolPerMinute;
    const minute = this.clock.bounds('minute', now);
    if (this.poolWindow?.start !== minute.startMs) this.poolWindow = { start: minute.startMs, count: 0 };
    if (cap !== null && this.poolWindow.count >= cap) {
      return { ok: false, reason: 'pool_rate_limited', retryAfterMs: minute.endMs - now };
    }
    let ledger: LedgerRecord | null = null;
    if (spender) {
      const admitted = this.apps.admit(spender, want, this.clock, now);
      if (!(admitted instanceof LedgerRecord)) return admitted;
      ledger = admitted;
    }
    this.wakeDue(now);
    let rec: KeyRecord | undefined;
    let granted: number;
    for (;;) {
      const slot = this.selection.pick(this.current, this.servedInTurn, this.records.length);
      if (slot < 0) {
        // Keys held for a save that has not landed: the caller waits for it (registry.ts), then asks again.
        if (this.reservations.anyHeld) return { ok: false, reason: 'reserving', retryAfterMs: null };
        const at = this.selection.nextWake();
        return { ok: false, reason: 'no_key_available', retryAfterMs: at === null ? null : Math.max(0, at - now) };
      }
      rec = this.records[slot]!;
      const ev = this.place(rec, now);
      if (!ev.usable) {
        this.keyOut(rec, ev);
        continue;
      }
      const size = block > 0 ? this.leaseSizeOf(rec, want, block, ledger, spender, now) : want;
      const left = size > 1 ? limitsLeft(rec, this.limits, this.clock, now) : null;
      granted = grant(size, left, cap === null ? null : cap - this.poolWindow.count, rec.probe === 'ready');
      if (!this.reservations.needs(rec, granted)) break;
      this.reservations.ask(rec, granted, this.records);
      // fill-first means the first key with room, so its requests wait for the save; any other
      // strategy holds the key out until the save lands, and the next key with room serves.
      if (this.policy.strategy === 'fill-first') return { ok: false, reason: 'reserving', retryAfterMs: null };
      this.reservations.hold(rec);
      this.selection.markOut(rec.slot, null);
    }
    if (ledger) {
      chargeApp(ledger, granted, this.clock, now);
      this.apps.renew(ledger, spender!.budget, this.clock, now);
    }
    return this.serve(rec, now, granted);
  }

  /** The uses a lease of `block` takes from `rec` (rules.ts leaseSize). */
  private leaseSizeOf(
    rec: KeyRecord,
    want: number,
    block: number,
    ledger: LedgerRecord | null,
    spender: Spender | undefined,
    now: number,
  ): number {
    const budget = ledger && spender ? budgetLeft(ledger, spender.budget, this.clock, now) : null;
    return leaseSize(want, block, limitsLeft(rec, this.limits, this.clock, now), budget);
  }

  /** Asks for a block for every key with none; false when none did (the backend saves them before serving). */
  reserveAhead(): boolean {
    return this.reservations.reserveAll(this.records);
  }

  /** A save landed: the keys it gave room to serve again, and the apps' reservations it carried. */
  reservationsSaved(now: number): void {
    this.apps.saved();
    for (const rec of this.reservations.landed()) this.place(rec, now);
  }

  appUsage(now: number): Record<string, AppUsage> {
    return this.apps.usage(this.clock, now);
  }

  protected serve(rec: KeyRecord, now: number, granted: number): Handout & { ok: true } {
    for (let k = 0; k < WINDOW_KINDS.length; k++)
      rec.addTo(k, this.clock.bounds(WINDOW_KINDS[k]!, now).startMs, granted);
    rec.total += granted;
    rec.lastUsedAt = now;
    rec.useSeq = this.useOrder.next();
    this.poolWindow!.count += granted;
    recordHandout(this.history, this.clock, now, granted);

    if (rec.slot !== this.current) {
      const from = this.records[this.current]?.keyId ?? null;
      const wasUsable = this.current >= 0 && this.selection.isUsable(this.current);
      this.emit({
        type: 'rotate',
        pool: this.name,
        from,
        to: rec.keyId,
        why: wasUsable || from === null ? 'turn' : 'unavailable',
      });
      this.current = rec.slot;
      this.servedInTurn = 0;
    } else if (this.servedInTurn >= this.policy.rotateEvery) {
      this.servedInTurn = 0; // the only usable key starts a new turn
    }
    this.servedInTurn += granted;

    if (rec.probe === 'ready') rec.probe = now + this.policy.probeTimeoutSec * 1000;
    // Reserve the next block while half of this one is left, so handouts rarely wait for a save.
    this.reservations.renew(rec);
    const after = this.place(rec, now);
    if (!after.usable && after.status !== 'probing') this.keyOut(rec, after);
    this.changes.touch(rec);
    const remaining = remainingAfter(
      limitsLeft(rec, this.limits, this.clock, now),
      this.policy,
      true,
      this.servedInTurn,
    );
    return { ok: true, key: rec.key, keyId: rec.keyId, remaining, granted };
  }

  /**
   * Changes the count of uses made at `at` by `delta` (see PoolBackend.recount); windows that ended
   * since keep theirs.
   */
  recount(keyId: string, delta: number, at: number, now: number, app?: string): boolean {
    const rec = this.byId.get(keyId);
    if (!rec) return false;
    if (app !== undefined) recountApp(this.apps.of(app), delta, at, this.clock, now);
    recountKey(rec, this.clock, delta, at, now);
    recountMinute(this.poolWindow, this.history, this.clock, delta, at, now);
    this.place(rec, now);
    this.changes.touch(rec);
    return true;
  }

  // ---------------------------------------------------------------- reports

  /** Applies what the upstream answered for a key's request. */
  report(input: ReportInput, now: number): ReportResult {
    const rec = this.byId.get(input.keyId);
    if (!rec) return { ok: false, reason: 'unknown_key' };
    const r = readReport(input, this.policy, this.clock, now);
    this.settle(rec, now);
    // A 429 within a pool-wide throttle already in force is part of it: the key is not to blame.
    const withinThrottle = r.outcome === 'rate_limited' && this.throttle.inForce(now);
    if (!withinThrottle) {
      if (r.outcome === 'rate_limited') this.throttle.note429(rec.keyId, now, r.retryAfterMs, rec);
      applyReport(rec, r, this.policy, now);
      if (r.outcome === 'rate_limited' && this.throttleIfCorrelated(now)) return { ok: true, outcome: r.outcome };
    }
    const ev = this.place(rec, now);
    if (!ev.usable && r.outcome !== 'ok') this.keyOut(rec, ev);
    this.changes.touch(rec);
    return { ok: true, outcome: r.outcome };
  }

  /** When the recent 429s are correlated, the caller is throttled, not the keys: their blocks are undone. */
  protected throttleIfCorrelated(now: number): boolean {
    const engaged = this.throttle.engage(now, (keyId) => this.byId.has(keyId), this.records.length);
    if (!engaged) return false;
    for (const [keyId, prior] of engaged.restore) {
      const rec = this.byId.get(keyId)!;
      rec.block = prior.block;
      rec.backoffLevel = prior.backoffLevel;
      rec.probe = prior.probe;
      this.changes.touch(rec);
      this.place(rec, now);
    }
    this.emit({ type: 'pool_throttled', pool: this.name, until: engaged.until, keys: engaged.keys });
    this.changes.dirty();
    return true;
  }

  // ---------------------------------------------------------------- admin

  clearThrottle(now: number): boolean {
    const inForce = this.throttle.clear(now);
    this.changes.dirty();
    return inForce;
  }

  admin(action: AdminAction, keyId: string, now: number, reason?: string): boolean {
    const rec = this.byId.get(keyId);
    if (!rec) return false;
    applyAdmin(rec, action, reason ?? null);
    if (action === 'reset') {
      rec.windows = {};
      rec.reserved = rec.reserveTo = 0; // the next handout reserves afresh
      this.reservations.forget(rec);
    }
    this.place(rec, now);
    this.changes.touch(rec);
    return true;
  }
}
