/**
 * A set of positions 0..size-1 over a Fenwick tree: add, remove, count, and "k-th member" /
 * "next member after p" in O(log n). The pool keeps its usable keys in one, so round-robin,
 * fill-first and random selection cost the same for 3 keys or 100,000.
 */
export class PositionSet {
  private readonly tree: Int32Array;
  private readonly member: Uint8Array;
  private readonly topBit: number;
  private count = 0;

  constructor(readonly size: number) {
    this.tree = new Int32Array(size + 1);
    this.member = new Uint8Array(size);
    let bit = 1;
    while (bit * 2 <= size) bit *= 2;
    this.topBit = size === 0 ? 0 : bit;
  }

  get length(): number {
    return this.count;
  }

  has(pos: number): boolean {
    return this.member[pos] === 1;
  }

  add(pos: number): void {
    if (this.member[pos] === 1) return;
    this.member[pos] = 1;
    this.count++;
    for (let i = pos + 1; i <= this.size; i += i & -i) this.tree[i]!++;
  }

  delete(pos: number): void {
    if (this.member[pos] !== 1) return;
    this.member[pos] = 0;
    this.count--;
    for (let i = pos + 1; i <= this.size; i += i & -i) this.tree[i]!--;
  }

  /** Members at positions < pos. */
  rank(pos: number): number {
    let sum = 0;
    for (let i = Math.min(pos, this.size); i > 0; i -= i & -i) sum += this.tree[i]!;
    return sum;
  }

  /** Position of the k-th member (k from 0), or -1. */
  kth(k: number): number {
    if (k < 0 || k >= this.count) return -1;
    let pos = 0;
    let remaining = k + 1;
    for (let bit = this.topBit; bit > 0; bit >>= 1) {
      const next = pos + bit;
      if (next <= this.size && this.tree[next]! < remaining) {
        pos = next;
        remaining -= this.tree[next]!;
      }
    }
    return pos; // tree index pos+1 holds the member; as a 0-based position that is pos
  }

  /** First member after `pos` in circular order (may be `pos` itself if it is the only member), or -1. */
  nextAfter(pos: number): number {
    if (this.count === 0) return -1;
    const before = this.rank(pos + 1);
    return this.kth(before < this.count ? before : 0);
  }
}
