import type { Strategy } from '../../shared/stats.js';
import { PositionSet } from './index/fenwick.js';
import { IndexedHeap } from './index/heap.js';

/**
 * A pool's selection indexes, by slot (a key's position in its file): the usable keys in a
 * Fenwick-backed set (and a heap by use sequence for least-recently-used), the keys that are out
 * with a known return time in a wake heap. Choosing a key is O(log n) in the pool size; what is
 * usable is the rules' verdict, which the pool records here.
 */
export class Selection {
  private usable = new PositionSet(0);
  private readonly lru = new IndexedHeap();
  private readonly wake = new IndexedHeap();

  constructor(
    private readonly strategy: Strategy,
    private readonly rotateEvery: number,
    private readonly rng: () => number,
  ) {}

  /** Starts over for a pool of `size` slots (the pool then marks each). */
  reset(size: number): void {
    this.usable = new PositionSet(size);
    this.lru.clear();
    this.wake.clear();
  }

  isUsable(slot: number): boolean {
    return this.usable.has(slot);
  }

  markUsable(slot: number, useSeq: number): void {
    this.wake.delete(slot);
    this.usable.add(slot);
    if (this.strategy === 'least-recently-used') this.lru.set(slot, useSeq);
  }

  /** Out of rotation, back on its own at `until` (then in the wake heap), or not (null). */
  markOut(slot: number, until: number | null): void {
    this.usable.delete(slot);
    this.lru.delete(slot);
    if (until !== null) this.wake.set(slot, until);
    else this.wake.delete(slot);
  }

  /** The next slot whose return time has come (taken off the wake heap), or undefined. */
  popDue(now: number): number | undefined {
    const at = this.wake.peekPriority();
    return at !== undefined && at <= now ? this.wake.pop() : undefined;
  }

  /** When the first key that is out comes back, or null. */
  nextWake(): number | null {
    return this.wake.peekPriority() ?? null;
  }

  /** The slot the strategy picks among the usable ones (-1: none), given the round-robin turn. */
  pick(current: number, servedInTurn: number, size: number): number {
    if (this.usable.length === 0) return -1;
    switch (this.strategy) {
      case 'round-robin':
        if (current >= 0 && this.usable.has(current) && servedInTurn < this.rotateEvery) return current;
        // The usual case, the next slot is usable, needs no walk of the tree.
        if (current + 1 < size && this.usable.has(current + 1)) return current + 1;
        return this.usable.nextAfter(current);
      case 'fill-first':
        return this.usable.kth(0);
      case 'random':
        return this.usable.kth(Math.floor(this.rng() * this.usable.length));
      case 'least-recently-used':
        return this.lru.peek() ?? -1;
    }
  }
}
