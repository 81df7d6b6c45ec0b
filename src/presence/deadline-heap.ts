/**
 * A binary min-heap of (due time, slot) pairs in typed arrays: one clock timer can then serve
 * every user's next presence deadline, with no object per entry (a million online users cost
 * 12 bytes each here, not a timer each).
 */
export class DeadlineHeap {
  #due: Float64Array;
  #slot: Int32Array;
  #size = 0;

  /** @param capacity initial number of entries before the arrays grow */
  constructor(capacity = 1024) {
    this.#due = new Float64Array(capacity);
    this.#slot = new Int32Array(capacity);
  }

  /** How many entries are queued (stale ones included). */
  get size(): number {
    return this.#size;
  }

  /** The earliest due time, or `Infinity` when empty. */
  peekDue(): number {
    return this.#size === 0 ? Number.POSITIVE_INFINITY : this.#due[0]!;
  }

  /** The slot of the earliest entry (only meaningful when not empty). */
  peekSlot(): number {
    return this.#slot[0]!;
  }

  /** Queues `slot` to be looked at `due`. */
  push(due: number, slot: number): void {
    if (this.#size === this.#due.length) this.#grow();
    const d = this.#due;
    const s = this.#slot;
    let i = this.#size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (d[p]! <= due) break;
      d[i] = d[p]!;
      s[i] = s[p]!;
      i = p;
    }
    d[i] = due;
    s[i] = slot;
  }

  /** Removes the earliest entry. */
  pop(): void {
    const n = --this.#size;
    if (n <= 0) {
      this.#size = Math.max(0, n);
      return;
    }
    const d = this.#due;
    const s = this.#slot;
    const due = d[n]!;
    const slot = s[n]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && d[r]! < d[l]! ? r : l;
      if (d[c]! >= due) break;
      d[i] = d[c]!;
      s[i] = s[c]!;
      i = c;
    }
    d[i] = due;
    s[i] = slot;
  }

  /** Empties the heap. */
  clear(): void {
    this.#size = 0;
  }

  #grow(): void {
    const due = new Float64Array(this.#due.length * 2);
    due.set(this.#due);
    this.#due = due;
    const slot = new Int32Array(this.#slot.length * 2);
    slot.set(this.#slot);
    this.#slot = slot;
  }
}
