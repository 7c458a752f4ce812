import type { KeyNow, PoolBackend, PoolOptions, UpstreamCheck, UpstreamRecorded } from './contract.js';
import { takeUpstreamCounts } from './counts.js';
import { applyUpstream, evaluate, upstreamHoldFor } from './rules.js';
import { Activity, type HistoryRange, type HistorySeries } from './activity.js';
import { PinTable } from './pins.js';
import { PoolCore } from './pool-core.js';
import type { PoolPolicy } from './policy.js';
import type { KeyRecord, KeyState, PoolState } from './records.js';
import { poolStats, type KeyRows } from './stats.js';

/** What a pool's save needs besides its records: the pool-wide fields of PoolState. */
export type PoolHeader = Omit<PoolState, 'keys'>;

/** One pool's part of a save (Pool.drain): state/format.ts writes it. */
export interface PoolDrain {
  header: PoolHeader;
  records: readonly KeyRecord[];
  retired: ReadonlyMap<string, KeyState>;
}

/**
 * One pool of keys held in memory (the file backend): the rules at work (PoolCore), its pins, its
 * stats, and what it persists, which it hands out as records and a header (state/format.ts
 * writes them); it never touches a file. Synchronous: callers serialise access with its mutex.
 */
export class Pool extends PoolCore implements PoolBackend {
  private readonly pins: PinTable;

  constructor(name: string, policy: PoolPolicy, options: PoolOptions & { reservations?: boolean } = {}) {
    super(name, policy, options);
    this.pins = new PinTable(options.pinLimits);
  }

  protected removed(keyId: string): void {
    this.pins.dropKey(keyId); // its identifications can be reached through no other key
  }

  // ---------------------------------------------------------------- pins

  pinned(ref: string, now: number): string | null {
    return this.pins.get(ref, now); // an expired pin it drops goes with the next save
  }

  pin(refs: readonly string[], keyId: string, now: number): void {
    const evicted = this.pins.set(refs, keyId, now);
    if (evicted > 0) this.emit({ type: 'pins_evicted', pool: this.name, count: evicted });
    this.changes.dirty();
  }

  pinCount = (): number => this.pins.size;

  // ---------------------------------------------------------------- upstream

  /** Records an upstream check: the key's verdict and credits, and the pool's `upstreamSync`. */

  recordUpstream(check: UpstreamCheck, now: number): UpstreamRecorded {
    if (!check.reached || !check.viaProxy) {
      this.upstreamSync = check.reached
        ? { ok: true, at: now, error: null }
        : { ok: false, at: now, error: check.error };
      this.changes.dirty();
    }
    if (!check.reached) return { found: true, revived: false };
    const rec = this.byId.get(check.keyId);
    if (!rec) return { found: false, revived: false };
    this.settle(rec, now);
    const prior = rec.upstreamHold;
    const hold = upstreamHoldFor(check.finding, this.clock, now);
    applyUpstream(rec, hold);
    if (check.credits) {
      rec.credits = check.credits;
      if (this.policy.upstreamLimits) takeUpstreamCounts(rec, this.clock, check.credits.used, check.servedBefore, now);
    }
    const ev = this.place(rec, now);
    // A verdict repeated at every sync is news once.
    if (hold && !ev.usable && (prior?.status !== hold.status || prior.reason !== hold.reason)) this.keyOut(rec, ev);
    this.changes.touch(rec);
    return { found: true, revived: prior !== null && hold === null };
  }

  // ---------------------------------------------------------------- stats

  /** Each key's status and total now (null: not in the pool): for pinned and free proxied calls, and syncs. */
  keyStatus(keyIds: readonly string[], now: number): Array<KeyNow | null> {
    return keyIds.map((keyId) => {
      const rec = this.byId.get(keyId);
      if (!rec) return null;
      this.settle(rec, now);
      return { status: evaluate(rec, this.limits, this.clock, now).status, total: rec.total };
    });
  }

  /** Stats for `/api/stats`, masked. `keyFile` is filled in by the caller. */
  stats(now: number, options: { keys: KeyRows } = { keys: 'all' }) {
    this.wakeDue(now);
    for (const rec of this.records) this.settle(rec, now);
    const cur = this.records[this.current];
    return poolStats(
      {
        name: this.name,
        policy: this.policy,
        limits: this.limits,
        clock: this.clock,
        records: this.records,
        current: cur ? { rec: cur, servedInTurn: this.servedInTurn } : null,
        throttle: this.throttle.hold,
        history: this.history,
        upstreamSync: this.upstreamSync,
      },
      now,
      options.keys,
    );
  }

  activitySeries(range: HistoryRange, now: number): HistorySeries {
    return (this.options.activity ?? new Activity()).series(range, now);
  }

  // ---------------------------------------------------------------- persistence (written by state/format.ts)

  /**
   * The pool-wide fields as a save writes them: with every pin (`full`), or with the pins changed
   * since the last save (a journal entry). Either way later changes go to the next save.
   */
  header(full = true, final = false): PoolHeader {
    const changed = this.pins.takeChanges();
    return { ...this.fields(), pins: full ? this.pins.save() : changed, apps: this.apps.save(final) };
  }

  /** The pool-wide fields but the pins. */
  private fields(): PoolHeader {
    return {
      current: this.records[this.current]?.keyId ?? null,
      servedInTurn: this.servedInTurn,
      poolWindow: this.poolWindow,
      throttle: this.throttle.hold,
      history: this.history,
      seq: this.useOrder.save(),
      ...(this.upstreamSync ? { upstreamSync: this.upstreamSync } : {}),
      ...(this.options.activity ? { activity: this.options.activity.save() } : {}),
    };
  }

  /** Everything, for a full save: from now on what changes goes to the next save. */
  takeAll(): { records: readonly KeyRecord[]; retired: ReadonlyMap<string, KeyState> } {
    this.changes.takeFull();
    return { records: this.records, retired: this.retired };
  }

  /**
   * What the next save writes of this pool, handed over as one value: everything (`full`: every
   * record, the retired ones, every pin), or a journal entry (the records and pins changed since
   * the last save); the apps' ledgers whole either way. From now on what changes goes to the save
   * after it. `final`: a clean stop, which reserves nothing ahead.
   */
  drain(full: boolean, final = false): PoolDrain {
    if (full) {
      const { records, retired } = this.takeAll();
      return { header: this.header(true, final), records, retired };
    }
    return { header: this.header(false, final), records: this.changes.takeChanged(), retired: new Map() };
  }

  /** Whether the next save must be a full one (membership changed, or a save failed). */
  get needsFullSave(): boolean {
    return this.changes.fullSaveNeeded;
  }

  /** Makes the next save a full one (the last one may not have reached the disk). */
  requireFullSave(): void {
    this.changes.requireFull();
  }

  exportState(): PoolState {
    return this.snapshot();
  }

  replaceState(state: PoolState, now: number): void {
    this.restore(state, now);
    this.changes.dirty();
  }

  /** Serialisable state, keyed by keyId (a copy). */
  snapshot(): PoolState {
    const keys: Record<string, KeyState> = {};
    for (const [keyId, st] of this.retired) keys[keyId] = st;
    for (const rec of this.records) keys[rec.keyId] = rec.toState();
    return {
      ...this.fields(),
      pins: this.pins.save(),
      history: this.history.map((c) => ({ ...c })),
      apps: this.apps.copy(),
      keys,
    };
  }

  /** Restores a saved state (validated by state/read-state.ts) onto the current keys. */
  restore(state: PoolState, now: number): void {
    this.changes.requireFull();
    this.reservations.reset();
    this.retired.clear();
    const restored = new Set<KeyRecord>();
    // for...in, not Object.entries: a million keys make no array of pairs.
    for (const keyId in state.keys) {
      const st = state.keys[keyId]!;
      const rec = this.byId.get(keyId);
      if (rec) {
        rec.assign(st);
        restored.add(rec);
        if (rec.disabled && rec.disabled.lineHash !== rec.lineHash) rec.disabled = null;
      } else {
        this.retired.set(keyId, { ...st, failures: [...st.failures], removedAt: st.removedAt ?? now });
      }
    }
    this.useOrder.restore(state.seq, this.records, restored);
    this.current = state.current === null ? -1 : (this.byId.get(state.current)?.slot ?? -1);
    this.servedInTurn = this.current === -1 ? 0 : state.servedInTurn;
    this.poolWindow = state.poolWindow;
    this.throttle.hold = state.throttle;
    this.history = state.history.map((c) => ({ ...c }));
    this.upstreamSync = state.upstreamSync ?? null;
    if (state.activity) this.options.activity?.load(state.activity);
    this.pins.load(state.pins ?? {}, now);
    this.apps.load(state.apps);
    this.rebuildIndexes(now);
  }
}
