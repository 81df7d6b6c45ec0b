import { RelayError } from "../core/errors.js";
import { murmur3 } from "./hash.js";
import type { HashRing } from "./hash-ring.js";

/** Options of {@link BoundedLoads}. */
export interface BoundedLoadsOptions {
  /**
   * The balance factor c > 1: no node holds more than ceil(c * mean) of the keys currently
   * assigned (weighted: ceil(c * total * weight / totalWeight)). HAProxy's
   * `hash-balance-factor` 125 is c = 1.25.
   * @default 1.25
   */
  readonly balanceFactor?: number;
}

/** A key that changed node to keep the load cap (after a release or a ring change). */
export interface LoadMove<N extends string = string> {
  readonly key: string;
  readonly from: N | undefined;
  readonly to: N;
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, 2018): a key goes
 * to the first node clockwise from its hash that is below its cap, so no node exceeds
 * ceil(c * mean) of the keys currently assigned, while most keys stay on their ring owner.
 * @remarks It tracks only the keys it was given (`assign`/`release`); it stores nothing
 * else and does not watch the ring: after adding or removing nodes, call
 * {@link BoundedLoads.rebalance}. When a release lowers the cap under a node's load, it
 * moves one of that node's keys on and reports the move, so the cap holds at all times.
 * @example
 * const loads = new BoundedLoads(ring, { balanceFactor: 1.25 });
 * const node = loads.assign("conn-17"); // ... later
 * loads.release("conn-17"); // returns any keys moved to keep the cap
 */
export class BoundedLoads<N extends string = string> {
  /** The balance factor c. */
  readonly balanceFactor: number;
  readonly #ring: HashRing<N>;
  readonly #owner = new Map<string, N>();
  readonly #keys = new Map<N, Set<string>>();

  /** @throws RelayError `invalid_option` when the balance factor is not a number > 1 */
  constructor(ring: HashRing<N>, options: BoundedLoadsOptions = {}) {
    const c = options.balanceFactor ?? 1.25;
    if (typeof c !== "number" || !Number.isFinite(c) || c <= 1) {
      throw new RelayError(
        "invalid_option",
        `BoundedLoads: Expected \`balanceFactor\` to be a number > 1, got \`${String(c)}\` (${typeof c})`,
        { path: "balanceFactor" },
      );
    }
    this.balanceFactor = c;
    this.#ring = ring;
  }

  /** How many keys are assigned. */
  get size(): number {
    return this.#owner.size;
  }

  /** The node a key is assigned to, or undefined. */
  ownerOf(key: string): N | undefined {
    return this.#owner.get(key);
  }

  /** How many keys a node holds. */
  loadOf(node: N): number {
    return this.#keys.get(node)?.size ?? 0;
  }

  /** Keys held per node (nodes with none are left out). */
  loads(): Map<N, number> {
    const out = new Map<N, number>();
    for (const [n, set] of this.#keys) if (set.size > 0) out.set(n, set.size);
    return out;
  }

  /** The most keys `node` may hold when `total` keys are assigned. */
  capOf(node: N, total = this.#owner.size): number {
    return this.#caps(total).get(node) ?? 0;
  }

  /**
   * Assigns a key (or returns its current node): the first node clockwise from its hash
   * whose load is below its cap, counting this key in the total.
   * @throws RelayError `invalid_option` when the ring is empty
   */
  assign(key: string): N {
    const current = this.#owner.get(key);
    if (current !== undefined) return current;
    const node = this.#pick(murmur3(key), undefined, this.#caps(this.#owner.size + 1));
    this.#put(key, node);
    return node;
  }

  /**
   * Releases a key. If that lowers a node's cap below its load, moves keys on until every
   * node is within its cap again, and returns those moves (usually none).
   */
  release(key: string): LoadMove<N>[] {
    const node = this.#owner.get(key);
    if (node === undefined) return [];
    this.#owner.delete(key);
    this.#keys.get(node)?.delete(key);
    return this.#enforce();
  }

  /**
   * Reassigns every key against the ring as it is now (after nodes joined or left), in
   * assignment order, and returns the keys whose node changed.
   */
  rebalance(): LoadMove<N>[] {
    const keys = [...this.#owner.entries()];
    this.#owner.clear();
    this.#keys.clear();
    const moves: LoadMove<N>[] = [];
    for (const [key, before] of keys) {
      const after = this.assign(key);
      if (after !== before)
        moves.push({ key, from: this.#ring.has(before) ? before : undefined, to: after });
    }
    return moves;
  }

  #caps(total: number): Map<N, number> {
    const caps = new Map<N, number>();
    const nodes = this.#ring.nodes();
    let totalWeight = 0;
    for (const n of nodes) totalWeight += n.weight ?? 1;
    for (const n of nodes) {
      caps.set(n.id, Math.ceil((this.balanceFactor * total * (n.weight ?? 1)) / totalWeight));
    }
    return caps;
  }

  /** The first node clockwise from `hash` (other than `skip`) below its cap. */
  #pick(hash: number, skip: N | undefined, caps: Map<N, number>): N {
    const ring = this.#ring;
    const len = ring.pointCount;
    if (len === 0) throw new RelayError("invalid_option", "BoundedLoads: the ring is empty");
    let i = ring.position(hash);
    for (let steps = 0; steps < len; steps++) {
      const node = ring.nodeAt(i);
      if (node !== skip && this.loadOf(node) < (caps.get(node) ?? 0)) return node;
      if (++i === len) i = 0;
    }
    // Unreachable while c > 1: the caps sum to at least c * total > total.
    throw new RelayError("internal", "BoundedLoads: no node below its cap");
  }

  #put(key: string, node: N): void {
    this.#owner.set(key, node);
    let set = this.#keys.get(node);
    if (!set) {
      set = new Set();
      this.#keys.set(node, set);
    }
    set.add(key);
  }

  /** Moves keys off nodes above their cap (after the total shrank). */
  #enforce(): LoadMove<N>[] {
    const moves: LoadMove<N>[] = [];
    const total = this.#owner.size;
    const caps = this.#caps(total);
    for (const [node, set] of this.#keys) {
      const cap = caps.get(node) ?? 0;
      while (set.size > cap) {
        // The oldest key of the node moves to the next node clockwise below its cap.
        const key = set.values().next().value as string;
        set.delete(key);
        this.#owner.delete(key);
        const to = this.#pick(murmur3(key), node, caps);
        this.#put(key, to);
        moves.push({ key, from: node, to });
      }
    }
    return moves;
  }
}
