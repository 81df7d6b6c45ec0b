import { z } from "zod";
import {
  type Clock,
  type NodeId,
  parseOptions,
  RelayError,
  systemClock,
  type Timer,
  TypedEmitter,
} from "../core/index.js";
import { DEFAULT_CLAIM_TTL_MS, type NodeInfo, type NodeRegistry } from "./node-registry.js";

/** Options for {@link Discovery}. */
export interface DiscoveryOptions {
  /** The shared registry. */
  registry: NodeRegistry;
  /** This node's id; use a fresh one per process start. */
  nodeId: NodeId;
  /** How long this node stays live without a heartbeat. @default 10000 */
  ttlMs?: number;
  /** How often to heartbeat and look at the others. @default ttlMs / 3 */
  intervalMs?: number;
  /** How long a claimed death may take to handle before another node retries it. @default 30000 */
  claimTtlMs?: number;
  /** Published with the registration (e.g. the gateway address). */
  meta?: Record<string, string>;
  /**
   * Handles a death this node claimed (drop its sessions, redeliver its queue). The death is
   * confirmed once it resolves; if it rejects the claim lapses and is retried, by this node
   * or another. Runs after the `nodeExpired` event.
   */
  onExpired?: (node: NodeInfo) => Promise<void> | void;
  /** Drives the heartbeat timer. @default systemClock */
  clock?: Clock;
}

const schema = z
  .object({
    registry: z.custom<NodeRegistry>(
      (v) => typeof (v as NodeRegistry | null)?.claimExpired === "function",
      "a NodeRegistry",
    ),
    nodeId: z.string().min(1),
    ttlMs: z.int().min(1).default(10_000),
    intervalMs: z.int().min(1).optional(),
    claimTtlMs: z.int().min(1).default(DEFAULT_CLAIM_TTL_MS),
    meta: z.record(z.string(), z.string()).default({}),
    onExpired: z
      .custom<(n: NodeInfo) => Promise<void> | void>((v) => typeof v === "function")
      .optional(),
    clock: z
      .custom<Clock>((v) => typeof (v as Clock | null)?.setInterval === "function", "a Clock")
      .optional(),
  })
  .refine((o) => o.intervalMs === undefined || o.intervalMs < o.ttlMs, {
    message: "an interval shorter than `ttlMs`",
    path: ["intervalMs"],
  });

/** Events of {@link Discovery}. */
export interface DiscoveryEvents {
  /** Another node appeared in the live set (also for every node already there at start). */
  nodeJoined: (node: NodeInfo) => void;
  /** A node left the live set (expired or deregistered). Every node sees it: update the ring here. */
  nodeLeft: (nodeId: NodeId) => void;
  /**
   * A node died and THIS node claimed the cleanup: exactly one node in the cluster gets it
   * per death (again only if the handling failed). `lastHeartbeat` is the user-visible
   * "last seen" for its users.
   */
  nodeExpired: (nodeId: NodeId, lastHeartbeat: number, node: NodeInfo) => void;
  /** This node's own heartbeat was refused (others consider it dead); it has registered again. */
  selfExpired: () => void;
  /** A registry call failed; the next tick tries again. */
  error: (error: RelayError) => void;
}

/**
 * Keeps one node registered and watches the others: heartbeats every `intervalMs` through
 * the Clock, emits membership changes, and claims and handles expired nodes.
 * @example
 * const d = new Discovery({ registry, nodeId, onExpired: (n) => router.nodeDied(n) });
 * d.on("nodeLeft", (id) => ring.remove(id));
 * await d.start();
 */
export class Discovery extends TypedEmitter<DiscoveryEvents> {
  readonly nodeId: NodeId;
  readonly #registry: NodeRegistry;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #intervalMs: number;
  readonly #claimTtlMs: number;
  readonly #meta: Record<string, string>;
  readonly #onExpired: ((node: NodeInfo) => Promise<void> | void) | undefined;
  #members = new Map<NodeId, NodeInfo>();
  #timer: Timer | undefined;
  #running: Promise<void> | undefined;
  #started = false;

  /** @throws RelayError `invalid_option` */
  constructor(options: DiscoveryOptions) {
    super();
    const o = parseOptions(schema, options, "Discovery");
    this.nodeId = o.nodeId as NodeId;
    this.#registry = o.registry;
    this.#clock = o.clock ?? systemClock;
    this.#ttlMs = o.ttlMs;
    this.#intervalMs = o.intervalMs ?? Math.max(1, Math.floor(o.ttlMs / 3));
    this.#claimTtlMs = o.claimTtlMs;
    this.#meta = o.meta;
    this.#onExpired = o.onExpired;
  }

  /** The other live nodes as of the last tick, sorted by id. */
  members(): readonly NodeInfo[] {
    return [...this.#members.values()];
  }

  /** Whether {@link start} ran and {@link stop} has not. */
  get started(): boolean {
    return this.#started;
  }

  /**
   * Registers this node, runs a first tick (so `nodeJoined` fires for the nodes already
   * there) and starts the heartbeat timer.
   * @throws RelayError `store_unavailable` when the registry cannot be reached.
   */
  async start(): Promise<void> {
    if (this.#started) return;
    await this.#registry.register(this.nodeId, { ttlMs: this.#ttlMs, meta: this.#meta });
    this.#started = true;
    this.#timer = this.#clock.setInterval(() => {
      void this.tick();
    }, this.#intervalMs);
    await this.tick();
  }

  /** Stops heartbeating; by default deregisters, so others see `nodeLeft` and no expiry. */
  async stop(options: { deregister?: boolean } = {}): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#clock.clear(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => {});
    if (options.deregister ?? true) await this.#registry.deregister(this.nodeId);
  }

  /**
   * One round: heartbeat, refresh membership, claim and handle expired nodes. The timer
   * calls it; tests may call it directly. A round already running is joined, not doubled.
   */
  tick(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#round().finally(() => {
        this.#running = undefined;
      });
    }
    return this.#running;
  }

  /** Resolves when no round is running. */
  async idle(): Promise<void> {
    await this.#running;
  }

  async #round(): Promise<void> {
    if (!this.#started) return;
    try {
      if (!(await this.#registry.heartbeat(this.nodeId))) {
        await this.#registry.register(this.nodeId, { ttlMs: this.#ttlMs, meta: this.#meta });
        this.emit("selfExpired");
      }
      this.#diff(await this.#registry.live());
      const dead = await this.#registry.claimExpired({ claimTtlMs: this.#claimTtlMs });
      for (const node of dead) await this.#handle(node);
    } catch (e) {
      this.emit("error", asRelayError(e));
    }
  }

  #diff(live: readonly NodeInfo[]): void {
    const next = new Map<NodeId, NodeInfo>();
    for (const n of live) if (n.nodeId !== this.nodeId) next.set(n.nodeId, n);
    const joined: NodeInfo[] = [];
    const left: NodeId[] = [];
    for (const [id, n] of next) if (!this.#members.has(id)) joined.push(n);
    for (const id of this.#members.keys()) if (!next.has(id)) left.push(id);
    this.#members = next;
    for (const id of left) this.emit("nodeLeft", id);
    for (const n of joined) this.emit("nodeJoined", n);
  }

  async #handle(node: NodeInfo): Promise<void> {
    if (node.nodeId === this.nodeId) {
      // Our own death, claimed by us (we were paused past our TTL): come back.
      await this.#registry.confirmExpired(node.nodeId);
      return;
    }
    if (this.#members.delete(node.nodeId)) this.emit("nodeLeft", node.nodeId);
    this.emit("nodeExpired", node.nodeId, node.lastHeartbeat, node);
    try {
      await this.#onExpired?.(node);
    } catch (e) {
      this.emit("error", asRelayError(e));
      return; // unconfirmed: the claim lapses and the death is handled again
    }
    await this.#registry.confirmExpired(node.nodeId);
  }
}

function asRelayError(e: unknown): RelayError {
  return e instanceof RelayError
    ? e
    : new RelayError("internal", e instanceof Error ? e.message : String(e), { cause: e });
}
