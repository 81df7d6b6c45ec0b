/**
 * A bounded set of recently seen ids: the client's dedupe window for incoming messages.
 * @remarks Oldest ids are forgotten first once `capacity` is reached; it does not persist
 * across page reloads (the server's outbox redelivers only what was never acked).
 */
export class RecentIds {
  readonly #capacity: number;
  readonly #ids = new Set<string>();

  /** @param capacity how many ids to remember @default 10000 */
  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  /** Records `id`; returns false when it was already there (a duplicate). */
  add(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.#capacity) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    return true;
  }

  /** True when `id` is remembered. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.#ids.size;
  }
}
