import { RelayError } from "../core/errors.js";
import { assertInteger } from "../core/options.js";
import { murmur3 } from "./hash.js";

/**
 * Virtual nodes per unit of weight when none is given.
 * @remarks Chosen from measurement: 1,000,000 keys over 100 nodes, 5 sets of node names x 3
 * sets of keys. A node's share has a relative spread of about 1/sqrt(vnodes), so the fullest
 * node sits well above the mean at ketama's 160 points (max/mean ≈ 1.18). Max/mean by
 * vnodes (worst, mean of 15 runs): 1,000 → 1.106, 1.081; 1,250 → 1.108, 1.074;
 * 1,500 → 1.092, 1.075; 2,000 → 1.081, 1.061. 1,500 is the smallest count that kept every
 * run under the 1.10 target; it costs about 1.5 MB at 100 nodes (8 bytes a point plus the
 * bucket index). Lookup time barely depends on it (~60 ns).
 */
export const DEFAULT_VNODES = 1500;

/** The most nodes one ring holds (node ranks are packed beside 32-bit points when sorting). */
export const MAX_RING_NODES = 1 << 20;

/** The top of the 32-bit hash space; ring positions are integers in [0, HASH_SPACE_MAX]. */
export const HASH_SPACE_MAX = 0xffffffff;

/** A node to put on a ring, with its weight (share of points relative to weight 1). */
export interface RingNode<N extends string = string> {
  readonly id: N;
  /** @default 1 */
  readonly weight?: number;
}

/** Options of {@link HashRing}. */
export interface HashRingOptions<N extends string = string> {
  /** Points per node of weight 1. @default {@link DEFAULT_VNODES} */
  readonly vnodes?: number;
  /** The initial nodes (ids, or ids with weights). */
  readonly nodes?: Iterable<NoInfer<N> | RingNode<NoInfer<N>>>;
}

/**
 * One range of the hash space that changes owner between two rings: keys whose hash `h`
 * satisfies `start <= h <= end` (inclusive) move from `from` to `to`. `from` is undefined
 * when the old ring was empty, `to` when the new one is.
 */
export interface RingMove<N extends string = string> {
  readonly start: number;
  readonly end: number;
  readonly from: N | undefined;
  readonly to: N | undefined;
}

const RANK_SCALE = MAX_RING_NODES; // point * 2^20 + rank < 2^52: exact in a double

function checkWeight(owner: string, weight: unknown): number {
  if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0) {
    throw new RelayError(
      "invalid_option",
      `${owner}: Expected \`weight\` to be a finite number > 0, got \`${String(weight)}\` (${typeof weight})`,
      { path: "weight" },
    );
  }
  return weight;
}

/**
 * A consistent-hash ring: each node owns many pseudo-random points (virtual nodes) on a
 * 32-bit circle, and a key belongs to the first point at or after its hash (wrapping).
 * @remarks Points live in a sorted `Uint32Array` with a parallel `Uint32Array` of node
 * slots, so `lookup` is one murmur3 hash plus a binary search, with no allocation. A node's
 * points depend only on its id and point count (`murmur3("<id>#<i>")`), so every process
 * that holds the same nodes builds the same ring, whatever the order they were added in;
 * equal points are ordered by node id. Adding a node moves only keys to that node, removing
 * one moves only its keys, and raising a weight moves only keys to that node.
 * @example
 * const ring = new HashRing({ nodes: ["n1", "n2", "n3"] });
 * ring.lookup("group:42"); // the owner, e.g. "n2"
 * ring.lookup("group:42", 2); // e.g. ["n2", "n1"]: the owner, then a replica
 */
export class HashRing<N extends string = string> {
  /** Points per node of weight 1. */
  readonly vnodes: number;
  #points: Uint32Array = new Uint32Array(0);
  #owners: Uint32Array = new Uint32Array(0);
  /** Bucket index: points with top bits `b` sit at indexes [#table[b], #table[b + 1]). */
  #table: Uint32Array = new Uint32Array(2);
  #shift = 31;
  #ids: (N | undefined)[] = [];
  #weights: number[] = [];
  readonly #slotOf = new Map<N, number>();
  readonly #free: number[] = [];
  /** Per-slot marks for `lookup(key, n)`: a slot is seen when its mark equals #epoch. */
  #seen: Uint32Array = new Uint32Array(0);
  #epoch = 0;

  /** @throws RelayError `invalid_option` on a bad vnode count, weight or duplicate node */
  constructor(options: HashRingOptions<N> = {}) {
    this.vnodes = assertInteger("HashRing", "vnodes", options.vnodes ?? DEFAULT_VNODES, 1);
    if (options.nodes) {
      for (const n of options.nodes) {
        const node: RingNode<N> = typeof n === "string" ? { id: n } : n;
        if (this.#slotOf.has(node.id)) {
          throw new RelayError("invalid_option", `HashRing: duplicate node \`${node.id}\``, {
            path: "nodes",
          });
        }
        const slot = this.#ids.length;
        if (slot >= MAX_RING_NODES) {
          throw new RelayError("invalid_option", `HashRing: at most ${MAX_RING_NODES} nodes`, {
            path: "nodes",
          });
        }
        this.#ids.push(node.id);
        this.#weights.push(checkWeight("HashRing", node.weight ?? 1));
        this.#slotOf.set(node.id, slot);
      }
      this.#rebuild();
    }
  }

  /** The 32-bit ring position of a key (murmur3 of its UTF-16LE bytes). */
  static hash(key: string): number {
    return murmur3(key);
  }

  /** How many nodes the ring holds. */
  get size(): number {
    return this.#slotOf.size;
  }

  /** How many points (virtual nodes) the ring holds. */
  get pointCount(): number {
    return this.#points.length;
  }

  /** Bytes held by the point, owner, bucket-index and mark arrays (the ring's memory, apart from node ids). */
  get memoryBytes(): number {
    return (
      this.#points.byteLength +
      this.#owners.byteLength +
      this.#table.byteLength +
      this.#seen.byteLength
    );
  }

  /** True when the ring holds `id`. */
  has(id: N): boolean {
    return this.#slotOf.has(id);
  }

  /** The weight of a node, or undefined when it is not on the ring. */
  weightOf(id: N): number | undefined {
    const slot = this.#slotOf.get(id);
    return slot === undefined ? undefined : this.#weights[slot];
  }

  /** The nodes and their weights, in the order they were added. */
  nodes(): RingNode<N>[] {
    const out: RingNode<N>[] = [];
    for (const [id, slot] of this.#slotOf) out.push({ id, weight: this.#weights[slot]! });
    return out;
  }

  /** How many points a node of this weight gets. */
  pointsFor(weight: number): number {
    return Math.max(1, Math.round(this.vnodes * weight));
  }

  /**
   * Puts a node on the ring. Only keys that now map to it move.
   * @throws RelayError `invalid_option` when the node is already there or the weight is bad
   */
  add(id: N, weight = 1): this {
    if (this.#slotOf.has(id)) {
      throw new RelayError("invalid_option", `HashRing: node \`${id}\` is already on the ring`);
    }
    if (this.#slotOf.size >= MAX_RING_NODES) {
      throw new RelayError("invalid_option", `HashRing: at most ${MAX_RING_NODES} nodes`);
    }
    checkWeight("HashRing", weight);
    const slot = this.#free.pop() ?? this.#ids.length;
    this.#ids[slot] = id;
    this.#weights[slot] = weight;
    this.#slotOf.set(id, slot);
    this.#merge(slot, 0, this.pointsFor(weight));
    return this;
  }

  /** Takes a node off the ring; only its keys move. Returns false when it was not there. */
  remove(id: N): boolean {
    const slot = this.#slotOf.get(id);
    if (slot === undefined) return false;
    this.#filter(slot, 0, 0);
    this.#slotOf.delete(id);
    this.#ids[slot] = undefined;
    this.#weights[slot] = 0;
    this.#free.push(slot);
    return true;
  }

  /**
   * Changes a node's weight. Raising it moves only keys to the node; lowering it moves only
   * keys away from it (the node keeps the first points of its sequence).
   * @throws RelayError `invalid_option` when the node is unknown or the weight is bad
   */
  reweigh(id: N, weight: number): this {
    const slot = this.#slotOf.get(id);
    if (slot === undefined) throw new RelayError("invalid_option", `HashRing: no node \`${id}\``);
    checkWeight("HashRing", weight);
    const before = this.pointsFor(this.#weights[slot]!);
    const after = this.pointsFor(weight);
    this.#weights[slot] = weight;
    if (after > before) this.#merge(slot, before, after);
    else if (after < before) this.#filter(slot, after, before);
    return this;
  }

  /** An independent copy (keep one before a change to {@link HashRing.diff} against it). */
  clone(): HashRing<N> {
    const c = new HashRing<N>({ vnodes: this.vnodes });
    c.#points = this.#points.slice();
    c.#owners = this.#owners.slice();
    c.#table = this.#table;
    c.#shift = this.#shift;
    c.#ids = this.#ids.slice();
    c.#weights = this.#weights.slice();
    for (const [id, slot] of this.#slotOf) c.#slotOf.set(id, slot);
    c.#free.push(...this.#free);
    c.#seen = new Uint32Array(this.#seen.length);
    return c;
  }

  /** The node owning `key`, or undefined on an empty ring. */
  lookup(key: string): N | undefined;
  /**
   * Up to `n` distinct nodes for `key`, walking clockwise from its owner: the owner first,
   * then the replicas. Fewer when the ring holds fewer nodes.
   */
  lookup(key: string, n: number): N[];
  lookup(key: string, n?: number): N | undefined | N[] {
    if (n === undefined) return this.lookupHash(murmur3(key));
    return this.lookupHashN(murmur3(key), n);
  }

  /** The node owning ring position `hash` (an unsigned 32-bit integer). */
  lookupHash(hash: number): N | undefined {
    const len = this.#points.length;
    if (len === 0) return undefined;
    const i = this.#find(hash);
    return this.#ids[this.#owners[i === len ? 0 : i]!];
  }

  /** Up to `n` distinct nodes for ring position `hash`; see {@link HashRing.lookup}. */
  lookupHashN(hash: number, n: number): N[] {
    const out: N[] = [];
    const len = this.#points.length;
    const want = Math.min(n, this.#slotOf.size);
    if (want <= 0) return out;
    if (++this.#epoch === 0xffffffff) {
      this.#seen.fill(0);
      this.#epoch = 1;
    }
    const epoch = this.#epoch;
    const seen = this.#seen;
    let i = this.position(hash);
    for (let steps = 0; steps < len && out.length < want; steps++) {
      const slot = this.#owners[i]!;
      if (seen[slot] !== epoch) {
        seen[slot] = epoch;
        out.push(this.#ids[slot]!);
      }
      if (++i === len) i = 0;
    }
    return out;
  }

  /** Index of the first point at or after `hash` (wrapping to 0); -1 on an empty ring. */
  position(hash: number): number {
    const len = this.#points.length;
    if (len === 0) return -1;
    const i = this.#find(hash);
    return i === len ? 0 : i;
  }

  /**
   * Index of the first point >= hash, or the point count when there is none. The bucket
   * table narrows the search to the few points sharing the hash's top bits.
   */
  #find(hash: number): number {
    const points = this.#points;
    const b = hash >>> this.#shift;
    let lo = this.#table[b]!;
    let hi = this.#table[b + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The node owning the point at index `i` (0 <= i < pointCount). */
  nodeAt(i: number): N {
    return this.#ids[this.#owners[i]!]!;
  }

  /** The ring position of the point at index `i`. */
  pointAt(i: number): number {
    return this.#points[i]!;
  }

  /**
   * The hash ranges whose owner differs between `before` and `after`, in ascending order,
   * adjacent ranges with the same move merged. A rebalance hands over exactly the keys whose
   * hash falls in a range, from `from` to `to`.
   */
  static diff<N extends string>(before: HashRing<N>, after: HashRing<N>): RingMove<N>[] {
    const out: RingMove<N>[] = [];
    const ap = before.#points;
    const bp = after.#points;
    const aLen = ap.length;
    const bLen = bp.length;
    if (aLen === 0 && bLen === 0) return out;
    const ownerA = (i: number): N | undefined =>
      aLen === 0 ? undefined : before.#ids[before.#owners[i === aLen ? 0 : i]!];
    const ownerB = (j: number): N | undefined =>
      bLen === 0 ? undefined : after.#ids[after.#owners[j === bLen ? 0 : j]!];
    const push = (start: number, end: number, from: N | undefined, to: N | undefined): void => {
      if (from === to || start > end) return;
      const last = out[out.length - 1];
      if (last && last.end + 1 === start && last.from === from && last.to === to) {
        out[out.length - 1] = { start: last.start, end, from, to };
      } else {
        out.push({ start, end, from, to });
      }
    };
    // Walk the union of both rings' points. Between consecutive union points u' < u, every
    // hash in (u', u] maps in each ring to that ring's first point >= u.
    let i = 0;
    let j = 0;
    let prev = -1; // the segment starts at prev + 1
    while (i < aLen || j < bLen) {
      const u = Math.min(
        i < aLen ? ap[i]! : Number.POSITIVE_INFINITY,
        j < bLen ? bp[j]! : Number.POSITIVE_INFINITY,
      );
      push(prev + 1, u, ownerA(i), ownerB(j));
      prev = u;
      while (i < aLen && ap[i] === u) i++;
      while (j < bLen && bp[j] === u) j++;
    }
    // Past the last point, hashes wrap to each ring's first point.
    push(prev + 1, HASH_SPACE_MAX, ownerA(0), ownerB(0));
    return out;
  }

  /** Points of node `id` with sequence numbers in [from, to), sorted. */
  #seq(id: N, from: number, to: number): Uint32Array {
    const pts = new Uint32Array(to - from);
    for (let i = from; i < to; i++) pts[i - from] = murmur3(`${id}#${i}`);
    return pts.sort();
  }

  /** Before `a` in ring order: lower point, then lower node id. */
  #before(pa: number, ida: N, pb: number, idb: N): boolean {
    return pa < pb || (pa === pb && ida < idb);
  }

  /** Merges points [from, to) of `slot` into the sorted arrays. */
  #merge(slot: number, from: number, to: number): void {
    const id = this.#ids[slot]!;
    const add = this.#seq(id, from, to);
    const op = this.#points;
    const oo = this.#owners;
    const len = op.length + add.length;
    const np = new Uint32Array(len);
    const no = new Uint32Array(len);
    let i = 0;
    let j = 0;
    for (let k = 0; k < len; k++) {
      if (
        j < add.length &&
        (i >= op.length || this.#before(add[j]!, id, op[i]!, this.#ids[oo[i]!]!))
      ) {
        np[k] = add[j++]!;
        no[k] = slot;
      } else {
        np[k] = op[i]!;
        no[k] = oo[i++]!;
      }
    }
    this.#points = np;
    this.#owners = no;
    this.#indexed();
  }

  /** Drops the points of `slot` with sequence numbers in [keep, had) (all when keep is 0). */
  #filter(slot: number, keep: number, had: number): void {
    // Points to drop, counted (a node may, rarely, draw the same point twice).
    let drop: Map<number, number> | undefined;
    if (keep > 0) {
      drop = new Map();
      for (const p of this.#seq(this.#ids[slot]!, keep, had)) {
        drop.set(p, (drop.get(p) ?? 0) + 1);
      }
    }
    const op = this.#points;
    const oo = this.#owners;
    const np = new Uint32Array(op.length);
    const no = new Uint32Array(op.length);
    let k = 0;
    for (let i = 0; i < op.length; i++) {
      if (oo[i] === slot) {
        if (drop === undefined) continue;
        const left = drop.get(op[i]!);
        if (left !== undefined && left > 0) {
          drop.set(op[i]!, left - 1);
          continue;
        }
      }
      np[k] = op[i]!;
      no[k++] = oo[i]!;
    }
    this.#points = np.slice(0, k);
    this.#owners = no.slice(0, k);
    this.#indexed();
  }

  /** Builds the arrays for all nodes at once: one numeric sort of point * 2^20 + rank. */
  #rebuild(): void {
    const slots = [...this.#slotOf.values()];
    const byId = [...slots].sort((a, b) => (this.#ids[a]! < this.#ids[b]! ? -1 : 1));
    let total = 0;
    for (const s of slots) total += this.pointsFor(this.#weights[s]!);
    const keys = new Float64Array(total);
    let k = 0;
    for (let rank = 0; rank < byId.length; rank++) {
      const s = byId[rank]!;
      const pts = this.#seq(this.#ids[s]!, 0, this.pointsFor(this.#weights[s]!));
      for (let i = 0; i < pts.length; i++) keys[k++] = pts[i]! * RANK_SCALE + rank;
    }
    keys.sort();
    this.#points = new Uint32Array(total);
    this.#owners = new Uint32Array(total);
    for (let i = 0; i < total; i++) {
      const key = keys[i]!;
      const rank = key % RANK_SCALE;
      this.#points[i] = (key - rank) / RANK_SCALE;
      this.#owners[i] = byId[rank]!;
    }
    this.#indexed();
  }

  /** Rebuilds the bucket table (about 4 points a bucket) and sizes the seen marks. */
  #indexed(): void {
    const points = this.#points;
    const len = points.length;
    const bits = Math.min(24, Math.max(1, Math.floor(Math.log2(Math.max(2, len))) - 1));
    this.#shift = 32 - bits;
    const buckets = 1 << bits;
    const table = new Uint32Array(buckets + 1);
    let i = 0;
    for (let b = 0; b <= buckets; b++) {
      while (i < len && points[i]! >>> this.#shift < b) i++;
      table[b] = i;
    }
    this.#table = table;
    this.#growSeen();
  }

  #growSeen(): void {
    if (this.#seen.length < this.#ids.length) {
      const s = new Uint32Array(Math.max(8, this.#ids.length * 2));
      s.set(this.#seen);
      this.#seen = s;
    }
  }
}
