import { NEVER_USED_SEQ_BASE } from './policy.js';
import type { KeyRecord, KeyState } from './records.js';

/**
 * Least-recently-used order (KeyState.useSeq): a handout sequence number, from 1, for each
 * handout; and for keys never handed out, first-seen numbers from NEVER_USED_SEQ_BASE, below
 * every used one. The Redis script keeps the same two counters (meta `seq` and `nseq`).
 */
export class UseOrder {
  used = 0;
  seen = 0;

  /** The number of a handout now. */
  next(): number {
    return ++this.used;
  }

  /** A key first seen now. */
  firstSeen(): number {
    return NEVER_USED_SEQ_BASE + ++this.seen;
  }

  /** For a key whose state has no useSeq (saved before it was kept): first seen now, or just used. */
  fresh(state: KeyState): number {
    return state.lastUsedAt === null ? this.firstSeen() : this.next();
  }

  /** The counters as saved. */
  save(): { used: number; seen: number } {
    return { used: this.used, seen: this.seen };
  }

  /**
   * Takes over saved counters; keys the state did not know are first seen now, after every key
   * it did. State without counters (saved before they were kept): the order is derived from
   * lastUsedAt, ties in file order.
   */
  restore(
    saved: { used: number; seen: number } | undefined,
    records: readonly KeyRecord[],
    known: ReadonlySet<KeyRecord>,
  ): void {
    if (saved) {
      this.used = saved.used;
      this.seen = saved.seen;
      for (const rec of records) if (!known.has(rec)) rec.useSeq = this.firstSeen();
      return;
    }
    this.used = this.seen = 0;
    const order = [...records].sort((a, b) => (a.lastUsedAt ?? -1) - (b.lastUsedAt ?? -1) || a.slot - b.slot);
    for (const rec of order) rec.useSeq = rec.lastUsedAt === null ? this.firstSeen() : this.next();
  }
}
