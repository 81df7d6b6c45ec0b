import type { NodeId, SessionId } from "../core/ids.js";
import type { ServerFrame } from "../protocol/schemas.js";

/**
 * What crosses between nodes. `frames` carries one frame for a list of local sessions (one
 * packet per node, not per recipient: fan-out happens at the edge). `control` carries
 * node-to-node requests (acks, group forwarding) as plain JSON data.
 */
export type BusPacket =
  | {
      readonly kind: "frames";
      /** The sessions on the receiving node that get the frame. */
      readonly to: readonly SessionId[];
      readonly frame: ServerFrame;
    }
  | {
      readonly kind: "control";
      readonly from: NodeId;
      readonly op: string;
      readonly data: unknown;
    };

/** Handles packets arriving for one node. */
export type BusHandler = (packet: BusPacket) => void;

/**
 * The link between nodes: `publish` a packet to a node, `subscribe` to one's own.
 * @remarks It may lose, delay or duplicate packets; the DeliveryQueue makes delivery
 * at-least-once and the client's dedupe by message id makes it effectively-once.
 * It does not order packets across different publishers.
 */
export interface NodeBus {
  /** Sends a packet to a node. Resolves once handed to the transport, not once handled. */
  publish(nodeId: NodeId, packet: BusPacket): Promise<void>;
  /** Receives the packets for a node; returns a function that unsubscribes. */
  subscribe(nodeId: NodeId, handler: BusHandler): Promise<() => Promise<void>>;
  /** Releases the transport. */
  close(): Promise<void>;
}

/**
 * The in-process {@link NodeBus}: packets are handed to the subscriber synchronously, in
 * publish order, and never lost.
 */
export class MemoryNodeBus implements NodeBus {
  readonly #handlers = new Map<NodeId, Set<BusHandler>>();

  async publish(nodeId: NodeId, packet: BusPacket): Promise<void> {
    this.publishSync(nodeId, packet);
  }

  /** Synchronous {@link publish}, for hot paths inside one process. */
  publishSync(nodeId: NodeId, packet: BusPacket): void {
    const set = this.#handlers.get(nodeId);
    if (!set) return;
    for (const h of set) h(packet);
  }

  async subscribe(nodeId: NodeId, handler: BusHandler): Promise<() => Promise<void>> {
    let set = this.#handlers.get(nodeId);
    if (!set) {
      set = new Set();
      this.#handlers.set(nodeId, set);
    }
    set.add(handler);
    return async () => {
      set.delete(handler);
    };
  }

  async close(): Promise<void> {
    this.#handlers.clear();
  }
}
