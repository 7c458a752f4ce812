import type { ChangeTracker } from './changes.js';
import type { KeyRecord } from './records.js';

/**
 * A pool's durable reservations (the file backend's; see KeyState.reserved): which key needs a
 * save before it serves again, and the blocks asked for. A key that needs one is held out of the
 * selection until the save lands, so requests go to keys that have room instead of queueing
 * behind one key's save; only when every usable key is held does a handout wait (`reserving`).
 * Synchronous, like the pool: the backend says when a save landed (`landed`).
 */
export class Reservations {
  private readonly held = new Set<KeyRecord>();
  /** Keys may lack any reservation (added, restored or reset since the last sweep). */
  private unreserved = true;

  constructor(
    /** Uses reserved at a time; 0: this pool keeps no reservations. */
    readonly block: number,
    /** The pool's total limit: no reservation goes past it. */
    private readonly totalLimit: number | null,
    private readonly changes: ChangeTracker<KeyRecord>,
  ) {}

  /** Whether `granted` more uses of `rec` need a save first. */
  needs(rec: KeyRecord, granted: number): boolean {
    return this.block > 0 && rec.total + granted > rec.reserved;
  }

  /**
   * Asks for the block `rec` needs to serve `granted` more, and one for every key with none (a
   * fresh pool of 10,000 keys then takes one save, not one a key).
   */
  ask(rec: KeyRecord, granted: number, records: readonly KeyRecord[]): void {
    this.reserve(rec, rec.total + granted, granted);
    this.reserveAll(records);
  }

  /**
   * Asks for a block for every key with none (after a start, keys added, a reset); false when
   * none lacked one. The backend asks at start, so the first requests find their blocks saved.
   */
  reserveAll(records: readonly KeyRecord[]): boolean {
    if (!this.unreserved) return false;
    this.unreserved = false;
    let asked = false;
    for (const r of records)
      if (this.block > 0 && r.reserveTo <= r.total) {
        this.reserve(r, r.total);
        asked = true;
      }
    return asked;
  }

  /** Holds `rec` out of the selection until a save gives it room (`landed`). */
  hold(rec: KeyRecord): void {
    this.held.add(rec);
  }

  isHeld(rec: KeyRecord): boolean {
    return this.held.has(rec);
  }

  get anyHeld(): boolean {
    return this.held.size > 0;
  }

  /** After a save landed: the held keys it covers, to put back in the selection. */
  landed(): KeyRecord[] {
    const back: KeyRecord[] = [];
    for (const rec of this.held)
      if (rec.reserved > rec.total) {
        this.held.delete(rec);
        back.push(rec);
      }
    return back;
  }

  /** Asks for the next block while half of this one is left, so a busy key rarely waits at all. */
  renew(rec: KeyRecord): void {
    if (this.block > 0 && (rec.reserved - rec.total) * 2 <= this.block) this.reserve(rec, rec.total);
  }

  /** A key's reservation was zeroed (an admin reset): not held any more, and asked for afresh. */
  forget(rec: KeyRecord): void {
    this.held.delete(rec);
    this.unreserved = true;
  }

  /** Keys were added, restored or reset (their records maybe new): none is held, some may have no reservation. */
  reset(): void {
    this.held.clear();
    this.unreserved = true;
  }

  /**
   * Asks for a durable reservation covering `uses` and a block beyond (the backend saves it, then
   * sets `reserved`). Each request that waits adds what it wants, so one save covers every request
   * waiting on the key. Never past the total limit: a crash would only overcount.
   */
  private reserve(rec: KeyRecord, uses: number, waiting = 0): void {
    const target = Math.max(
      uses,
      Math.min(Math.max(uses + this.block, rec.reserveTo + waiting), this.totalLimit ?? Infinity),
    );
    if (target <= rec.reserveTo) return;
    rec.reserveTo = target;
    this.changes.touch(rec);
    this.changes.wantReservation();
  }
}
