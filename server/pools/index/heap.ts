/**
 * A binary min-heap of integer ids with a numeric priority each, supporting update and
 * delete by id in O(log n). Ties break on the id, so order is deterministic.
 */
export class IndexedHeap {
  private readonly ids: number[] = [];
  private readonly prio = new Map<number, number>();
  private readonly slot = new Map<number, number>();

  get size(): number {
    return this.ids.length;
  }

  peek(): number | undefined {
    return this.ids[0];
  }

  peekPriority(): number | undefined {
    const top = this.ids[0];
    return top === undefined ? undefined : this.prio.get(top);
  }

  /** Insert, or move an existing id to a new priority. */
  set(id: number, priority: number): void {
    const at = this.slot.get(id);
    this.prio.set(id, priority);
    if (at === undefined) {
      this.ids.push(id);
      this.slot.set(id, this.ids.length - 1);
      this.up(this.ids.length - 1);
    } else {
      this.up(at);
      this.down(this.slot.get(id)!);
    }
  }

  pop(): number | undefined {
    const top = this.ids[0];
    if (top !== undefined) this.delete(top);
    return top;
  }

  delete(id: number): void {
    const at = this.slot.get(id);
    if (at === undefined) return;
    const last = this.ids.pop()!;
    this.slot.delete(id);
    this.prio.delete(id);
    if (at < this.ids.length) {
      this.ids[at] = last;
      this.slot.set(last, at);
      this.up(at);
      this.down(this.slot.get(last)!);
    }
  }

  clear(): void {
    this.ids.length = 0;
    this.prio.clear();
    this.slot.clear();
  }

  private less(a: number, b: number): boolean {
    const pa = this.prio.get(a)!,
      pb = this.prio.get(b)!;
    return pa < pb || (pa === pb && a < b);
  }

  private swap(i: number, j: number): void {
    const a = this.ids[i]!,
      b = this.ids[j]!;
    this.ids[i] = b;
    this.ids[j] = a;
    this.slot.set(b, i);
    this.slot.set(a, j);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.ids[i]!, this.ids[parent]!)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.ids.length;
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let best = i;
      if (l < n && this.less(this.ids[l]!, this.ids[best]!)) best = l;
      if (r < n && this.less(this.ids[r]!, this.ids[best]!)) best = r;
      if (best === i) return;
      this.swap(i, best);
      i = best;
    }
  }
}
