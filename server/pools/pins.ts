/**
 * Which key made an identification: `ref` (a Kindwise access_token or custom_id) → keyId, kept
 * per pool for the proxy, so that every later call naming it goes to that key. Pure: time is an
 * argument. Bounded: a pin lasts `ttlMs` and a pool keeps at most `max` (the oldest go first).
 */

/** A pin as saved: `[keyId, pinnedAt]`. */
export type SavedPin = [string, number];

export interface PinLimits {
  ttlMs: number;
  max: number;
}

export const DEFAULT_PIN_LIMITS: PinLimits = { ttlMs: 190 * 86_400_000, max: 1_000_000 };

export class PinTable {
  /** In pinning order (a pin set again moves to the end): the first is the oldest. */
  private readonly pins = new Map<string, { keyId: string; at: number }>();
  /** Pins set or dropped since the last `takeChanges` (null: dropped), for a journal save. */
  private changed = new Map<string, SavedPin | null>();

  constructor(private readonly limits: PinLimits = DEFAULT_PIN_LIMITS) {}

  get size(): number {
    return this.pins.size;
  }

  /** The keyId `ref` is pinned to, or null (none, or expired: then it is dropped). */
  get(ref: string, now: number): string | null {
    const pin = this.pins.get(ref);
    if (!pin) return null;
    if (now - pin.at >= this.limits.ttlMs) {
      this.drop(ref);
      return null;
    }
    return pin.keyId;
  }

  /** Pins each of `refs` to `keyId`; returns how many old pins were evicted to stay within `max`. */
  set(refs: readonly string[], keyId: string, now: number): number {
    for (const ref of refs) {
      this.pins.delete(ref);
      this.pins.set(ref, { keyId, at: now });
      this.changed.set(ref, [keyId, now]);
    }
    let evicted = 0;
    for (const [ref, pin] of this.pins) {
      if (this.pins.size <= this.limits.max && now - pin.at < this.limits.ttlMs) break;
      this.drop(ref);
      if (now - pin.at < this.limits.ttlMs) evicted++;
    }
    return evicted;
  }

  /** Drops every pin to `keyId` (its key left the pool); returns how many. */
  dropKey(keyId: string): number {
    let n = 0;
    for (const [ref, pin] of this.pins) {
      if (pin.keyId !== keyId) continue;
      this.drop(ref);
      n++;
    }
    return n;
  }

  private drop(ref: string): void {
    this.pins.delete(ref);
    this.changed.set(ref, null);
  }

  /** Every live pin, oldest first, for a full save or an export. */
  save(): Record<string, SavedPin> {
    const out: Record<string, SavedPin> = {};
    for (const [ref, pin] of this.pins) out[ref] = [pin.keyId, pin.at];
    return out;
  }

  /** What changed since the last call (null: dropped), for a journal entry; a full save calls it too. */
  takeChanges(): Record<string, SavedPin | null> {
    const out = Object.fromEntries(this.changed);
    this.changed = new Map();
    return out;
  }

  hasChanges(): boolean {
    return this.changed.size > 0;
  }

  /** Replaces every pin with saved ones (dropped ones, null, are left out), oldest first. */
  load(saved: Readonly<Record<string, SavedPin | null>>, now: number): void {
    this.pins.clear();
    this.changed = new Map();
    const live = Object.entries(saved).filter(
      (e): e is [string, SavedPin] => e[1] !== null && now - e[1][1] < this.limits.ttlMs,
    );
    live.sort((a, b) => a[1][1] - b[1][1]);
    for (const [ref, [keyId, at]] of live.slice(Math.max(0, live.length - this.limits.max)))
      this.pins.set(ref, { keyId, at });
  }
}
