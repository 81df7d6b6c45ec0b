/** An opaque handle to a scheduled timer; pass it back to {@link Clock.clear}. */
export interface Timer {
  readonly id: number;
}

/**
 * A source of time. The system clock in production, a {@link ManualClock} in tests.
 * @remarks Every timer in relaykit goes through a Clock, so a whole cluster can run under
 * virtual time. It does not promise wall-clock accuracy: only `now()` ordering.
 */
export interface Clock {
  /** Milliseconds since the epoch (or since the start of a virtual run). */
  now(): number;
  /** Runs `fn` once after `ms`. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Runs `fn` every `ms` until cleared. */
  setInterval(fn: () => void, ms: number): Timer;
  /** Cancels a timer; clearing an expired or unknown timer does nothing. */
  clear(timer: Timer | undefined): void;
}

interface Scheduled {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
  every: number;
}

/**
 * A virtual clock: time moves only when the test says so, and timers fire in order of due
 * time, then of scheduling, which makes every run repeatable.
 * @remarks Timers live in a binary heap, so a simulation with millions of timers stays
 * O(log n) per schedule and per fire.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #nextId = 1;
  readonly #heap: Scheduled[] = [];
  readonly #live = new Map<number, Scheduled>();

  /** @param start the initial time in ms @default 0 */
  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.#add(fn, ms, 0);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.#add(fn, ms, Math.max(1, ms));
  }

  clear(timer: Timer | undefined): void {
    if (timer) this.#live.delete(timer.id);
  }

  /** How many timers are scheduled and not cleared. */
  get pending(): number {
    return this.#live.size;
  }

  /** The due time of the next live timer, or `undefined` when none is scheduled. */
  nextDue(): number | undefined {
    this.#dropDead();
    return this.#heap[0]?.at;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `t`, firing due timers in order. Never moves backwards. */
  advanceTo(t: number): void {
    for (;;) {
      this.#dropDead();
      const top = this.#heap[0];
      if (!top || top.at > t) break;
      this.#pop();
      this.#now = Math.max(this.#now, top.at);
      if (top.every > 0) {
        top.at += top.every;
        top.seq = this.#seq++;
        this.#push(top);
      } else {
        this.#live.delete(top.id);
      }
      top.fn();
    }
    this.#now = Math.max(this.#now, t);
  }

  /**
   * Fires timers until none is left or `limit` timers have fired (guarding against
   * intervals that never end). Returns the number fired.
   */
  runAll(limit = 1_000_000): number {
    let fired = 0;
    while (fired < limit) {
      const due = this.nextDue();
      if (due === undefined) break;
      this.advanceTo(due);
      fired++;
    }
    return fired;
  }

  #add(fn: () => void, ms: number, every: number): Timer {
    const id = this.#nextId++;
    const entry: Scheduled = { id, at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, every };
    this.#live.set(id, entry);
    this.#push(entry);
    return { id };
  }

  #dropDead(): void {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#live.get(top.id) === top) return;
      this.#pop();
    }
  }

  #less(a: Scheduled, b: Scheduled): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(e: Scheduled): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
