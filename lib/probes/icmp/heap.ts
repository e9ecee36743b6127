/**
 * A binary min-heap ordered by a numeric key read from each item (the engine's send and deadline
 * queues). push/pop are O(log n); items may be pushed again after being popped.
 */
export class MinHeap<T> {
  private readonly items: T[] = [];

  /** @param key the priority of an item (smaller first); read when the item is pushed or moved */
  constructor(private readonly key: (item: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  /** The smallest item, without removing it. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    const k = this.key(item);
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.key(a[p]!) <= k) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = item;
  }

  /** Removes and returns the smallest item. */
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    const k = this.key(last);
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const m = r < a.length && this.key(a[r]!) < this.key(a[l]!) ? r : l;
      if (this.key(a[m]!) >= k) break;
      a[i] = a[m]!;
      i = m;
    }
    a[i] = last;
    return top;
  }

  /** Removes every item. */
  clear(): void {
    this.items.length = 0;
  }
}
