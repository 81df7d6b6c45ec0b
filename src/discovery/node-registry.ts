import { z } from "zod";
import { type Clock, type NodeId, parseOptions, systemClock } from "../core/index.js";

/** What the registry knows about one node. */
export interface NodeInfo {
  readonly nodeId: NodeId;
  /** Free-form data other nodes need, e.g. the node's gateway address. */
  readonly meta: Readonly<Record<string, string>>;
  /** The node expires when `lastHeartbeat + ttlMs` has passed without a heartbeat. */
  readonly ttlMs: number;
  /** When it (last) registered, in registry Clock time. */
  readonly registeredAt: number;
  /** Its last heartbeat (or registration), in registry Clock time. */
  readonly lastHeartbeat: number;
}

/** How a node registers. */
export interface RegisterOptions {
  /** How long the node stays live after each heartbeat. */
  readonly ttlMs: number;
  /** See {@link NodeInfo.meta}. @default {} */
  readonly meta?: Readonly<Record<string, string>> | undefined;
}

/** Options for {@link NodeRegistry.claimExpired}. */
export interface ClaimOptions {
  /**
   * How long the claimer has to handle the death and call {@link NodeRegistry.confirmExpired};
   * after that another claimer gets the node again (at-least-once handling).
   * @default 30000
   */
  readonly claimTtlMs?: number | undefined;
  /** At most this many nodes per call. @default 100 */
  readonly limit?: number | undefined;
}

/**
 * Service discovery: which nodes are alive. Nodes register with a TTL and heartbeat; any
 * node may claim the ones that stopped, so no node is special.
 * @remarks Time is the registry's Clock (inject one clock into every node of a simulation;
 * in production, hosts' clocks must agree to well within a TTL). It does not run timers:
 * {@link Discovery} drives heartbeats and checks. It does not drop sessions or redeliver:
 * whoever claims an expired node does that. A node that comes back after being claimed
 * must register again (and should use a fresh `nodeId` per process start).
 */
export interface NodeRegistry {
  /** Registers (or re-registers) a node, live from now until `now + ttlMs`. */
  register(nodeId: NodeId, options: RegisterOptions): Promise<void>;
  /**
   * Extends a node's life by its TTL from now. Returns false when the node is not
   * registered (it was claimed as expired, deregistered, or never registered): it must
   * {@link NodeRegistry.register} again. A node past its deadline but not yet claimed may
   * still heartbeat (true), and is live again.
   */
  heartbeat(nodeId: NodeId): Promise<boolean>;
  /** Removes a node that leaves cleanly: it is never reported expired. Returns whether it was there. */
  deregister(nodeId: NodeId): Promise<boolean>;
  /** The nodes whose deadline has not passed, sorted by `nodeId`. */
  live(): Promise<readonly NodeInfo[]>;
  /**
   * Atomically claims nodes whose deadline has passed (and claims whose `claimTtlMs`
   * lapsed unconfirmed). Each death goes to exactly one concurrent caller, so two nodes
   * noticing it never both handle it.
   */
  claimExpired(options?: ClaimOptions): Promise<readonly NodeInfo[]>;
  /** Marks a claimed death as handled; the registry forgets the node. Unknown ids are ignored. */
  confirmExpired(nodeId: NodeId): Promise<void>;
}

/** The default claim lease. */
export const DEFAULT_CLAIM_TTL_MS = 30_000;
/** The default claim batch. */
export const DEFAULT_CLAIM_LIMIT = 100;

/** Options for {@link MemoryNodeRegistry}. */
export interface MemoryNodeRegistryOptions {
  /** Source of time for heartbeats and deadlines. @default systemClock */
  clock?: Clock;
}

const memorySchema = z.object({
  clock: z
    .custom<Clock>((v) => typeof (v as Clock | null)?.now === "function", "a Clock")
    .optional(),
});

interface Entry {
  info: NodeInfo;
  /** Live: `lastHeartbeat + ttlMs`. Claimed: the claim lease's end. */
  deadline: number;
}

/**
 * The in-memory {@link NodeRegistry}, driven by a {@link Clock}: share one instance between
 * the nodes of an in-process cluster or simulation.
 */
export class MemoryNodeRegistry implements NodeRegistry {
  readonly #clock: Clock;
  readonly #live = new Map<NodeId, Entry>();
  readonly #claimed = new Map<NodeId, Entry>();

  /** @throws RelayError `invalid_option` */
  constructor(options: MemoryNodeRegistryOptions = {}) {
    const o = parseOptions(memorySchema, options, "MemoryNodeRegistry");
    this.#clock = o.clock ?? systemClock;
  }

  async register(nodeId: NodeId, options: RegisterOptions): Promise<void> {
    const now = this.#clock.now();
    const info: NodeInfo = {
      nodeId,
      meta: { ...(options.meta ?? {}) },
      ttlMs: options.ttlMs,
      registeredAt: now,
      lastHeartbeat: now,
    };
    this.#live.set(nodeId, { info, deadline: now + options.ttlMs });
  }

  async heartbeat(nodeId: NodeId): Promise<boolean> {
    const e = this.#live.get(nodeId);
    if (!e) return false;
    const now = this.#clock.now();
    e.info = { ...e.info, lastHeartbeat: now };
    e.deadline = now + e.info.ttlMs;
    return true;
  }

  async deregister(nodeId: NodeId): Promise<boolean> {
    return this.#live.delete(nodeId);
  }

  async live(): Promise<readonly NodeInfo[]> {
    const now = this.#clock.now();
    return [...this.#live.values()]
      .filter((e) => e.deadline >= now)
      .map((e) => e.info)
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  async claimExpired(options: ClaimOptions = {}): Promise<readonly NodeInfo[]> {
    const now = this.#clock.now();
    const lease = options.claimTtlMs ?? DEFAULT_CLAIM_TTL_MS;
    const limit = options.limit ?? DEFAULT_CLAIM_LIMIT;
    const due: [NodeId, Entry, "live" | "claimed"][] = [];
    for (const [id, e] of this.#live) if (e.deadline < now) due.push([id, e, "live"]);
    for (const [id, e] of this.#claimed) if (e.deadline < now) due.push([id, e, "claimed"]);
    due.sort((a, b) => a[1].deadline - b[1].deadline || (a[0] < b[0] ? -1 : 1));
    const out: NodeInfo[] = [];
    for (const [id, e, from] of due.slice(0, limit)) {
      if (from === "live") this.#live.delete(id);
      this.#claimed.set(id, { info: e.info, deadline: now + lease });
      out.push(e.info);
    }
    return out;
  }

  async confirmExpired(nodeId: NodeId): Promise<void> {
    this.#claimed.delete(nodeId);
  }
}
