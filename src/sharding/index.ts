export { BoundedLoads, type BoundedLoadsOptions, type LoadMove } from "./bounded-loads.js";
export { fmix32, murmur3 } from "./hash.js";
export {
  DEFAULT_VNODES,
  HASH_SPACE_MAX,
  HashRing,
  type HashRingOptions,
  MAX_RING_NODES,
  type RingMove,
  type RingNode,
} from "./hash-ring.js";
