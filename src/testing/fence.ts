import type { Clock, ManualClock, Timer } from "../core/clock.js";

/** A promise that never settles: what a call into a dead process waits for. */
const NEVER: Promise<never> = new Promise<never>(() => {});

/**
 * A view of a shared store (or any object) for one process: while `alive()` is true every
 * method call goes through; once the process has died every call returns a promise that
 * never settles (a `...Sync` method throws instead), so nothing a dead node had in flight
 * can still change shared state.
 * @remarks Non-function properties are read through unchanged.
 */
export function fence<T extends object>(target: T, alive: () => boolean): T {
  const wrappers = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(t, key) {
      const v: unknown = Reflect.get(t, key, t);
      if (typeof v !== "function") return v;
      let w = wrappers.get(key);
      if (w === undefined) {
        const f = v as (...args: unknown[]) => unknown;
        // A synchronous method cannot answer with a promise: a dead process's call throws.
        const sync = typeof key === "string" && key.endsWith("Sync");
        w = (...args: unknown[]) => {
          if (alive()) return f.apply(t, args);
          if (sync) throw new Error(`${String(key)}: the process is dead`);
          return NEVER;
        };
        wrappers.set(key, w);
      }
      return w;
    },
  });
}

/**
 * One process's view of the shared virtual clock: its timers run on the shared
 * {@link ManualClock}, and {@link NodeClock.kill} cancels every one of them at once (a
 * crashed process's timers are gone).
 */
export class NodeClock implements Clock {
  readonly #base: ManualClock;
  readonly #timers = new Map<number, Timer>();
  #alive = true;

  constructor(base: ManualClock) {
    this.#base = base;
  }

  /** False once killed. */
  get alive(): boolean {
    return this.#alive;
  }

  /** How many of this process's timers are live. */
  get pending(): number {
    return this.#timers.size;
  }

  now(): number {
    return this.#base.now();
  }

  setTimeout(fn: () => void, ms: number): Timer {
    if (!this.#alive) return { id: -1 };
    const timers = this.#timers;
    const t = this.#base.setTimeout(() => {
      timers.delete(t.id);
      fn();
    }, ms);
    timers.set(t.id, t);
    return t;
  }

  setInterval(fn: () => void, ms: number): Timer {
    if (!this.#alive) return { id: -1 };
    const t = this.#base.setInterval(fn, ms);
    this.#timers.set(t.id, t);
    return t;
  }

  clear(timer: Timer | undefined): void {
    if (!timer) return;
    this.#timers.delete(timer.id);
    this.#base.clear(timer);
  }

  /** The process died: every timer is cancelled and new ones are ignored. */
  kill(): void {
    this.#alive = false;
    for (const t of this.#timers.values()) this.#base.clear(t);
    this.#timers.clear();
  }
}
