import type { ManualClock } from "../core/clock.js";
import type { NodeId } from "../core/ids.js";
import type { RandomSource } from "../core/random.js";
import type { BusHandler, BusPacket, NodeBus } from "../router/index.js";
import { type LinkFaults, type ResolvedFaults, resolveFaults, sampleDelay } from "./faults.js";
import type { TraceBuffer } from "./trace.js";

/** Counters of a {@link SimBus}. */
export interface SimBusStats {
  published: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  /** Lost to a partition or to a crashed or unsubscribed node. */
  unreachable: number;
}

/** Options of {@link SimBus}. */
export interface SimBusOptions {
  readonly clock: ManualClock;
  readonly random: RandomSource;
  readonly trace?: TraceBuffer;
  /** Faults of every link without its own settings. */
  readonly faults?: LinkFaults;
  /** Called on every send and arrival (the simulation's quiet detector). */
  readonly onActivity?: () => void;
}

/** A node's handle on a {@link SimBus}: a {@link NodeBus} that goes silent once killed. */
export interface SimBusEndpoint extends NodeBus {
  /** The node this endpoint publishes from. */
  readonly nodeId: NodeId;
  /** The process died: its subscriptions go and its later publishes vanish. */
  kill(): void;
}

/**
 * The simulated network between nodes: a {@link NodeBus} whose packets travel through the
 * virtual clock with a per-link delay distribution, and may be dropped, duplicated or
 * reordered. Nodes can be partitioned into groups that cannot reach each other.
 * @remarks Each node gets its own {@link SimBusEndpoint} so the bus knows who publishes.
 * Without `reorder`, a link is FIFO (like one Redis connection); with it, a held-back packet
 * may be overtaken. Packets are handed over by reference, not serialised.
 */
export class SimBus {
  /** Counters since creation. */
  readonly stats: SimBusStats = {
    published: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    reordered: 0,
    unreachable: 0,
  };
  readonly #clock: ManualClock;
  readonly #random: RandomSource;
  readonly #trace: TraceBuffer | undefined;
  readonly #onActivity: () => void;
  #faults: ResolvedFaults;
  readonly #links = new Map<string, ResolvedFaults>();
  readonly #handlers = new Map<NodeId, Set<BusHandler>>();
  readonly #lastAt = new Map<string, number>();
  #groups: Map<NodeId, number> | undefined;
  #inFlight = 0;

  constructor(options: SimBusOptions) {
    this.#clock = options.clock;
    this.#random = options.random;
    this.#trace = options.trace;
    this.#onActivity = options.onActivity ?? (() => {});
    this.#faults = resolveFaults(options.faults);
  }

  /** Packets sent and not yet arrived (or lost on arrival). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Sets the faults of every link, or of one direction `from -> to` only. */
  setFaults(faults: LinkFaults, from?: NodeId, to?: NodeId): void {
    if (from === undefined || to === undefined) {
      this.#faults = resolveFaults(faults);
      this.#links.clear();
    } else {
      this.#links.set(`${from}>${to}`, resolveFaults(faults, this.#faults));
    }
  }

  /**
   * Splits the nodes into groups that cannot reach each other; nodes not listed form one
   * more group together. Replaces any earlier partition.
   * @example bus.partition(["n1"], ["n2", "n3"])
   */
  partition(...groups: readonly (readonly NodeId[])[]): void {
    const m = new Map<NodeId, number>();
    groups.forEach((g, i) => {
      for (const n of g) m.set(n, i);
    });
    this.#groups = m;
    this.#trace?.add(
      this.#clock.now(),
      "fault",
      `partition ${groups.map((g) => `[${g.join(",")}]`).join(" ")}`,
    );
  }

  /** Ends the partition. */
  heal(): void {
    if (!this.#groups) return;
    this.#groups = undefined;
    this.#trace?.add(this.#clock.now(), "fault", "heal");
  }

  /** Whether a packet from `a` can reach `b` now. */
  canReach(a: NodeId, b: NodeId): boolean {
    const g = this.#groups;
    if (!g || a === b) return true;
    return (g.get(a) ?? -1) === (g.get(b) ?? -1);
  }

  /** A new endpoint for a node (one per process incarnation). */
  endpoint(nodeId: NodeId): SimBusEndpoint {
    const bus = this;
    let alive = true;
    const mine: [NodeId, BusHandler][] = [];
    return {
      nodeId,
      async publish(to: NodeId, packet: BusPacket): Promise<void> {
        if (alive) bus.#send(nodeId, to, packet);
      },
      async subscribe(to: NodeId, handler: BusHandler): Promise<() => Promise<void>> {
        if (!alive) return async () => {};
        const guarded: BusHandler = (p) => {
          if (alive) handler(p);
        };
        bus.#subscribe(to, guarded);
        mine.push([to, guarded]);
        return async () => bus.#unsubscribe(to, guarded);
      },
      async close(): Promise<void> {
        for (const [to, h] of mine) bus.#unsubscribe(to, h);
        mine.length = 0;
      },
      kill(): void {
        alive = false;
        for (const [to, h] of mine) bus.#unsubscribe(to, h);
        mine.length = 0;
      },
    };
  }

  #subscribe(node: NodeId, h: BusHandler): void {
    let set = this.#handlers.get(node);
    if (!set) {
      set = new Set();
      this.#handlers.set(node, set);
    }
    set.add(h);
  }

  #unsubscribe(node: NodeId, h: BusHandler): void {
    this.#handlers.get(node)?.delete(h);
  }

  #send(from: NodeId, to: NodeId, packet: BusPacket): void {
    this.stats.published++;
    this.#onActivity();
    const now = this.#clock.now();
    const f =
      this.#links.size > 0 ? (this.#links.get(`${from}>${to}`) ?? this.#faults) : this.#faults;
    if (!this.canReach(from, to)) {
      this.stats.unreachable++;
      this.#trace?.add(now, "bus", `${from}->${to} partitioned ${describePacket(packet)}`);
      return;
    }
    const r = this.#random;
    if (f.drop > 0 && r.next() < f.drop) {
      this.stats.dropped++;
      this.#trace?.add(now, "bus", `${from}->${to} drop ${describePacket(packet)}`);
      return;
    }
    const copies = f.duplicate > 0 && r.next() < f.duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const link = `${from}>${to}`;
    for (let i = 0; i < copies; i++) {
      let at = now + sampleDelay(f.delay, r);
      if (f.reorder > 0 && r.next() < f.reorder) {
        // Held back off the FIFO line: later packets on this link may overtake it.
        at += 1 + Math.floor(r.next() * f.reorderMs);
        this.stats.reordered++;
        this.#trace?.add(now, "bus", `${from}->${to} hold ${describePacket(packet)} until ${at}`);
      } else {
        at = Math.max(at, this.#lastAt.get(link) ?? 0);
        this.#lastAt.set(link, at);
      }
      this.#inFlight++;
      this.#clock.setTimeout(() => this.#arrive(from, to, packet), at - now);
    }
  }

  #arrive(from: NodeId, to: NodeId, packet: BusPacket): void {
    this.#inFlight--;
    this.#onActivity();
    const set = this.#handlers.get(to);
    if (!set || set.size === 0 || !this.canReach(from, to)) {
      this.stats.unreachable++;
      this.#trace?.add(
        this.#clock.now(),
        "bus",
        `${from}->${to} unreachable ${describePacket(packet)}`,
      );
      return;
    }
    this.stats.delivered++;
    for (const h of set) h(packet);
  }
}

/** A short description of a bus packet for the trace. */
export function describePacket(p: BusPacket): string {
  if (p.kind === "control") return `control ${p.op}`;
  const f = p.frame;
  switch (f.type) {
    case "message":
      return `message ${f.id} ${f.from}#${f.seq}`;
    case "receipt":
      return "ids" in f ? `receipt ${f.status} ${f.ids.join(",")}` : `receipt ${f.status}`;
    default:
      return f.type;
  }
}
