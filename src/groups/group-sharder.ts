import type { GroupId, NodeId } from "../core/ids.js";
import { HashRing, type RingMove } from "../sharding/index.js";

/** One group changing owner in a rebalance. */
export interface GroupHandover {
  readonly groupId: GroupId;
  /** The old owner; undefined when the old ring was empty. */
  readonly from: NodeId | undefined;
  /** The new owner; undefined when the new ring is empty. */
  readonly to: NodeId | undefined;
}

/** Options of {@link GroupSharder}. */
export interface GroupSharderOptions {
  /** The ring of live nodes (the sharder reads it; swap it with {@link GroupSharder.setRing}). */
  readonly ring: HashRing<NodeId>;
  /** This node. */
  readonly nodeId: NodeId;
}

/**
 * Which node owns each group: the node the ring names for the group id. The owner answers
 * member queries and serialises membership changes for its groups.
 * @remarks It holds no group data. When nodes join or leave, {@link GroupSharder.handover}
 * uses the ring diff to list the groups that change owner.
 */
export class GroupSharder {
  /** This node. */
  readonly nodeId: NodeId;
  #ring: HashRing<NodeId>;

  constructor(options: GroupSharderOptions) {
    this.nodeId = options.nodeId;
    this.#ring = options.ring;
  }

  /** The ring in use. */
  get ring(): HashRing<NodeId> {
    return this.#ring;
  }

  /** Uses a new ring from now on (keep the old one to compute a hand-over). */
  setRing(ring: HashRing<NodeId>): void {
    this.#ring = ring;
  }

  /** The node owning a group, or undefined while the ring is empty. */
  ownerOf(groupId: GroupId): NodeId | undefined {
    return this.#ring.lookup(groupId);
  }

  /** True when this node owns the group. */
  isLocal(groupId: GroupId): boolean {
    return this.#ring.lookup(groupId) === this.nodeId;
  }

  /**
   * The groups among `groupIds` whose owner differs between two rings, found through
   * {@link HashRing.diff} (one binary search per group over the moved ranges).
   */
  handover(
    before: HashRing<NodeId>,
    after: HashRing<NodeId>,
    groupIds: Iterable<GroupId>,
  ): GroupHandover[] {
    const moves = HashRing.diff(before, after);
    const out: GroupHandover[] = [];
    if (moves.length === 0) return out;
    for (const groupId of groupIds) {
      const m = findMove(moves, HashRing.hash(groupId));
      if (m) out.push({ groupId, from: m.from, to: m.to });
    }
    return out;
  }
}

function findMove(moves: readonly RingMove<NodeId>[], hash: number): RingMove<NodeId> | undefined {
  let lo = 0;
  let hi = moves.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const m = moves[mid]!;
    if (hash < m.start) hi = mid - 1;
    else if (hash > m.end) lo = mid + 1;
    else return m;
  }
  return undefined;
}
