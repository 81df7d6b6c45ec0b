import { ManualClock } from "../../src/core/clock.js";
import type { NodeId } from "../../src/core/ids.js";
import { sequentialIds } from "../../src/core/random.js";
import { type Connection, Gateway, type GatewayOptions } from "../../src/gateway/index.js";
import { DeliveryQueue, MemoryQueueStore } from "../../src/queue/index.js";
import {
  MemoryReceiptStore,
  ReceiptTracker,
  type ReceiptTrackerOptions,
} from "../../src/receipts/index.js";
import {
  type BusHandler,
  type BusPacket,
  deliveryQueue,
  MemoryDeviceRegistry,
  MemoryMessageStore,
  MemoryNodeBus,
  MemorySequenceStore,
  MemorySessionDirectory,
  type NodeBus,
  type Outbox,
  type OutboxHooks,
  Router,
  type RouterOptions,
} from "../../src/router/index.js";
import { settle } from "../../src/testing/settle.js";
import { FakeTransport } from "./fake-transport.js";

type Creds = { user: string; device: string };

/** A {@link MemoryNodeBus} that logs every packet it carries (to count packets per node). */
export class CountingBus implements NodeBus {
  readonly inner = new MemoryNodeBus();
  readonly log: { to: NodeId; packet: BusPacket }[] = [];
  /** When set, packets to these nodes are dropped (a partition). */
  readonly down = new Set<NodeId>();

  publish(nodeId: NodeId, packet: BusPacket): Promise<void> {
    this.log.push({ to: nodeId, packet });
    if (this.down.has(nodeId)) return Promise.resolve();
    return this.inner.publish(nodeId, packet);
  }

  subscribe(nodeId: NodeId, handler: BusHandler): Promise<() => Promise<void>> {
    return this.inner.subscribe(nodeId, handler);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** The `frames` packets carrying a frame of `type` (optionally matching `pred`), by target node. */
  framePackets(
    type: string,
    pred: (frame: Extract<BusPacket, { kind: "frames" }>["frame"]) => boolean = () => true,
  ): { to: NodeId; sessions: readonly string[] }[] {
    const out: { to: NodeId; sessions: readonly string[] }[] = [];
    for (const { to, packet } of this.log) {
      if (packet.kind === "frames" && packet.frame.type === type && pred(packet.frame)) {
        out.push({ to, sessions: packet.to });
      }
    }
    return out;
  }
}

/** A {@link FakeTransport} that can ack every message it gets, as a client does. */
class AckingTransport extends FakeTransport {
  #conn: Connection | undefined;
  readonly #waiting: string[] = [];

  constructor(
    private readonly gateway: Gateway<Creds>,
    private readonly autoAck: boolean,
  ) {
    super();
  }

  attach(conn: Connection): void {
    this.#conn = conn;
    this.#ack();
  }

  override send(data: string): void {
    super.send(data);
    const f = this.frames[this.frames.length - 1];
    if (!this.autoAck || f?.type !== "message") return;
    this.#waiting.push(f.id);
    queueMicrotask(() => this.#ack());
  }

  #ack(): void {
    const conn = this.#conn;
    if (!conn || this.#waiting.length === 0) return;
    const ids = this.#waiting.splice(0);
    void this.gateway.receive(conn, JSON.stringify({ type: "receipt", status: "delivered", ids }));
  }
}

/** One node of a {@link cluster}: a router and its gateway. */
export interface ClusterNode {
  readonly id: NodeId;
  readonly index: number;
  readonly router: Router;
  readonly gateway: Gateway<Creds>;
}

/** What per-node option builders get. */
export interface ClusterNodeContext {
  readonly id: NodeId;
  readonly index: number;
  readonly clock: ManualClock;
}

/** Options of {@link cluster}. */
export interface ClusterOptions {
  /** More router options per node (groups, priority...). */
  readonly router?: (ctx: ClusterNodeContext) => Partial<RouterOptions>;
  /** Receipt tracker options for every node (they all share one MemoryReceiptStore). */
  readonly receipts?: Omit<ReceiptTrackerOptions, "clock" | "store">;
  /**
   * One cluster-wide DeliveryQueue (a queue service outliving nodes) instead of one per node
   * over the shared store. Per-node queues (`sharedStore: true`) learn of an ack taken by
   * another node only at their next retry, so a device's in-flight window (16) stays full until
   * the backoff fires: tests with many cross-node deliveries and no clock steps use this.
   * @default false
   */
  readonly sharedQueue?: boolean;
  /** More gateway options per node (a presence bridge). */
  readonly gateway?: (
    ctx: ClusterNodeContext,
    router: Router,
  ) => Partial<Omit<GatewayOptions<Creds>, "router" | "authenticate">>;
}

/** A connected test device: its transport and a `send` that settles the world after the frame. */
export interface ClusterDevice {
  readonly node: ClusterNode;
  readonly transport: FakeTransport;
  readonly conn: Connection;
  send(frame: unknown): Promise<void>;
  close(clean?: boolean): Promise<void>;
}

/**
 * `n` in-process nodes (router + gateway each) named n1..nN, sharing one session directory,
 * device registry, sequence store, message store, queue store, receipt store and NodeBus,
 * under one manual clock. Each node runs its own DeliveryQueue over the shared queue store
 * (`sharedStore: true`), unless `sharedQueue` asks for one queue for the whole cluster.
 */
export function cluster(n: number, options: ClusterOptions = {}) {
  const clock = new ManualClock(1_000_000);
  const bus = new CountingBus();
  const directory = new MemorySessionDirectory();
  const devices = new MemoryDeviceRegistry();
  const sequences = new MemorySequenceStore();
  const messages = new MemoryMessageStore();
  const queueStore = new MemoryQueueStore();
  const receiptStore = new MemoryReceiptStore();
  const nodes: ClusterNode[] = [];
  const hooks: OutboxHooks[] = [];
  const shared = options.sharedQueue
    ? new DeliveryQueue({
        clock,
        store: queueStore,
        transmit: (d, e, a) => hooks[0]?.transmit(d, e, a),
        onFailed: (e, d, r) => hooks[0]?.onFailed(e, d, r),
      })
    : undefined;
  const sharedView = (h: OutboxHooks): Outbox => {
    const q = shared!;
    hooks.push(h);
    return {
      enqueue: (e, r, o) => q.enqueue(e, r, o),
      ack: (d, ids) => q.ack(d, ids),
      deviceConnected: (d) => q.deviceConnected(d),
      deviceDisconnected: (d) => q.deviceDisconnected(d),
      checkDuplicate: (u, c) => q.checkDuplicate(u, c),
      close: () => {},
    };
  };
  const addNode = (): ClusterNode => {
    const index = nodes.length;
    const id = `n${index + 1}` as NodeId;
    const ctx: ClusterNodeContext = { id, index, clock };
    const router = new Router({
      nodeId: id,
      clock,
      ids: sequentialIds(`${id}.`),
      bus,
      directory,
      devices,
      sequences,
      messages,
      outbox: shared ? sharedView : deliveryQueue({ clock, store: queueStore, sharedStore: true }),
      receipts: new ReceiptTracker({
        ...options.receipts,
        clock,
        store: receiptStore,
        sweepIntervalMs: 0,
      }),
      ...options.router?.(ctx),
    });
    const gateway = new Gateway<Creds>({
      clock,
      ids: sequentialIds(`${id}.s`),
      ...options.gateway?.(ctx, router),
      router,
      authenticate: (c) => ({ userId: c.user, deviceId: c.device }),
    });
    const node = { id, index, router, gateway };
    nodes.push(node);
    void router.start();
    return node;
  };
  for (let i = 0; i < n; i++) addNode();

  /** Lets every pending async step (router chains, bus hops) run; no time passes. */
  const flush = async () => {
    for (let i = 0; i < 3; i++) await settle();
  };

  /**
   * Connects `user/device` to node `node` (an index). With `autoAck`, the device acks every
   * message it gets as `delivered`, like a real client.
   */
  async function connect(
    node: number,
    user: string,
    device = "d1",
    opts: { autoAck?: boolean } = {},
  ): Promise<ClusterDevice> {
    const at = nodes[node];
    if (!at) throw new Error(`no node ${node}`);
    await at.router.start();
    const transport = new AckingTransport(at.gateway, opts.autoAck ?? false);
    const conn = await at.gateway.open(transport, { user, device });
    if (!conn) throw new Error(`${user}/${device} was refused`);
    transport.attach(conn);
    await flush();
    return {
      node: at,
      transport,
      conn,
      async send(frame) {
        await at.gateway.receive(conn, JSON.stringify(frame));
        await flush();
      },
      async close(clean = true) {
        await at.gateway.closed(conn, { clean });
        await flush();
      },
    };
  }

  async function close(): Promise<void> {
    for (const node of nodes) {
      await node.gateway.close();
      await node.router.close();
    }
    shared?.close();
  }

  return {
    clock,
    bus,
    directory,
    devices,
    sequences,
    messages,
    queueStore,
    receiptStore,
    nodes,
    addNode,
    connect,
    flush,
    close,
  };
}

/** The world {@link cluster} builds. */
export type Cluster = ReturnType<typeof cluster>;
