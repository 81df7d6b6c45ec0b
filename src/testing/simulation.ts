import { ManualClock } from "../core/clock.js";
import { RelayError } from "../core/errors.js";
import {
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type MessageId,
  type NodeId,
  splitDeviceKey,
  type UserId,
} from "../core/ids.js";
import { assertInteger } from "../core/options.js";
import { type RandomSource, seededRandom, sequentialIds } from "../core/random.js";
import { Gateway, type GatewayOptions } from "../gateway/index.js";
import { MemoryPresenceStore, type PresenceTracker, type UserPresence } from "../presence/index.js";
import { DeliveryQueue, LoadSignal, MemoryQueueStore, type RetryPolicy } from "../queue/index.js";
import { MemoryReceiptStore, ReceiptTracker } from "../receipts/index.js";
import {
  MemoryDeviceRegistry,
  MemoryMessageStore,
  MemorySequenceStore,
  MemorySessionDirectory,
  type OutboxFactory,
  type OutboxHooks,
  Router,
  type RouterHooks,
  type RouterOptions,
} from "../router/index.js";
import {
  type Delay,
  type LinkFaults,
  type ResolvedFaults,
  resolveFaults,
  sampleDelay,
} from "./faults.js";
import { fence, NodeClock } from "./fence.js";
import {
  checkBounded,
  checkFifo,
  checkNoDuplicates,
  checkNoLoss,
  checkPresence,
  checkReceiptsMonotonic,
  type DeviceView,
  type PresenceObservation,
  type SentMessage,
  type Violation,
} from "./invariants.js";
import { settle } from "./settle.js";
import { SimBus, type SimBusEndpoint } from "./sim-bus.js";
import { type AckMode, type ClientWorld, SimClient, type SimCredentials } from "./sim-client.js";
import { NodePresence, readShared, type SimPresenceShared } from "./sim-presence.js";
import { TraceBuffer } from "./trace.js";

/**
 * Which outbox the nodes use.
 * - `per-node`: each node runs its own `DeliveryQueue` over one shared `MemoryQueueStore`
 *   with `sharedStore: true`, as nodes do on Redis; a restarted node calls `recover()` and
 *   its schedule dies with it. An ack taken by another node clears the entry in the store,
 *   and the enqueuing node drops it at its next retry; a device connecting to another node
 *   gets its entries loaded from the store there. Known gap, why it is not the default yet:
 *   the node that queued entries for a then-offline device keeps them in memory until their
 *   TTL after the device took them elsewhere (the Redis node releases them by a bus message;
 *   the sim's `bounded` invariant reports it).
 * - `cluster`: one `DeliveryQueue` for the whole cluster, transmitting through any live node:
 *   a model of a queue service that outlives nodes.
 * - a function: builds the outbox factory for one node incarnation (give it a
 *   `LoadSignal` with `histogram: false`: the real event-loop delay is not deterministic).
 */
export type SimOutbox = "per-node" | "cluster" | ((ctx: SimNodeContext) => OutboxFactory);

/** What a custom outbox or router builder gets for one node incarnation. */
export interface SimNodeContext {
  readonly nodeId: NodeId;
  /** 1 on first boot, then +1 per restart. */
  readonly incarnation: number;
  /** This process's clock (its timers die with it). */
  readonly clock: NodeClock;
  readonly random: RandomSource;
  /** The shared queue store, fenced for this process. */
  readonly queueStore: MemoryQueueStore;
  /** Wraps a shared object so calls from this process hang once it has crashed. */
  fence<T extends object>(target: T): T;
}

/** Options of the simulation's built-in presence ({@link SimulationOptions.presence}). */
export interface SimPresenceOptions {
  /**
   * How often a node re-reads from the shared store the presence its subscribed connections
   * watch: the repair for change notifications the bus lost (drops, partitions). Runs only
   * on nodes with subscribers. @default 1000
   */
  readonly resyncMs?: number;
}

/** Options of {@link createSimulation}. */
export interface SimulationOptions {
  /** The seed: the same seed gives the same run, event for event. */
  readonly seed: number | string;
  /** How many nodes (named n1..nN), or their names. @default 3 */
  readonly nodes?: number | readonly string[];
  /** Faults of the node bus links. @default reliable, 1-5 ms */
  readonly bus?: LinkFaults;
  /** Faults of client <-> gateway links (`drop` breaks the connection). @default reliable, 1-5 ms */
  readonly clients?: LinkFaults;
  /** How long a client waits before reconnecting. @default { min: 50, max: 500 } */
  readonly reconnect?: Delay;
  /** The outbox. @default "cluster" (see {@link SimOutbox} for why not `per-node` yet) */
  readonly outbox?: SimOutbox;
  /** Redelivery policy of the queue. @default { retries: 8, factor: 2, minTimeout: 500, maxTimeout: 4000 } */
  readonly retry?: Partial<RetryPolicy>;
  /** In-flight window of the queue per device (1 = strict FIFO). @default 1 */
  readonly window?: number;
  /** Queue time-to-live in ms. @default 1 hour */
  readonly ttlMs?: number;
  /**
   * How long after an ack deadline a connected device may still ack before its connection is
   * closed as unresponsive (the queue's `ackGraceMs`; shorter than the library's 10 s so a
   * lost packet is redelivered well inside `quietMs`). @default 2000
   */
  readonly ackGraceMs?: number;
  /** Application hooks on every router (a spam filter, say). */
  readonly hooks?: RouterHooks;
  /** More router options per node (ports the lead wires in later: receipts, groups). */
  readonly router?: (ctx: SimNodeContext) => Partial<RouterOptions>;
  /**
   * Presence across the cluster, as the Redis node runs it: each node writes its devices'
   * records to the shared {@link Simulation.presenceStore} and shows its subscribed
   * connections the shared status; changes are announced over the simulated bus (faults
   * apply) and repaired by a periodic re-read. A node's devices go offline, last seen = the
   * crash time, when failure detection declares it dead or it restarts. Simulated clients
   * send no heartbeats, so a user is online exactly while one of its devices is connected.
   * With it on, {@link Simulation.check} checks presence by default. `false` turns it off;
   * a `presence` adapter from the `gateway` option replaces it on that node.
   * @default true
   */
  readonly presence?: boolean | SimPresenceOptions;
  /** More gateway options per node (limits, or a `presence` adapter replacing the built-in one). */
  readonly gateway?: (
    ctx: SimNodeContext,
    router: Router,
  ) => Partial<Omit<GatewayOptions<SimCredentials>, "router" | "authenticate">>;
  /** How long after a crash the cluster drops the dead node's sessions (discovery's TTL). @default 3000 */
  readonly failureDetectionMs?: number;
  /** `runUntilQuiet` stops after this long without network activity. @default 10000 */
  readonly quietMs?: number;
  /** How many recent events the trace keeps. @default 200 */
  readonly traceSize?: number;
  /** Virtual start time. @default 0 */
  readonly start?: number;
}

/** Options of {@link Simulation.client}. */
export interface SimClientSpec {
  /** @default "d1" */
  readonly device?: string;
  /** @default the nodes in turn */
  readonly node?: string;
  /** @default "auto" */
  readonly ack?: AckMode;
  /** @default false */
  readonly autoRead?: boolean;
  /** Connect at once. @default true */
  readonly connect?: boolean;
  /** Try other nodes when its node is down. @default true */
  readonly failover?: boolean;
}

/** One node of the simulation: a router and a gateway, alive or crashed. */
export interface SimNode {
  readonly id: NodeId;
  /** False between {@link Simulation.crash} and {@link Simulation.restart}. */
  readonly up: boolean;
  readonly incarnation: number;
  /** The current incarnation's router. */
  readonly router: Router;
  /** The current incarnation's gateway. */
  readonly gateway: Gateway<SimCredentials>;
  /** The current incarnation's DeliveryQueue, when the outbox is one. */
  readonly queue: DeliveryQueue | undefined;
  /** The current incarnation's presence tracker, when the built-in presence runs there. */
  readonly presence: PresenceTracker | undefined;
}

interface NodeState {
  id: NodeId;
  up: boolean;
  incarnation: number;
  router: Router;
  gateway: Gateway<SimCredentials>;
  queue: DeliveryQueue | undefined;
  presence: PresenceTracker | undefined;
  nodePresence: NodePresence | undefined;
  /** When this incarnation crashed (a restart expires the presence it left behind). */
  crashedAt: number | undefined;
  clock: NodeClock;
  endpoint: SimBusEndpoint;
}

const DEFAULT_RETRY: Partial<RetryPolicy> = {
  retries: 8,
  factor: 2,
  minTimeout: 500,
  maxTimeout: 4000,
  randomize: false,
};

/**
 * A deterministic chat cluster in one process: N nodes (router + gateway each) under one
 * virtual clock and one seeded random source, shared in-memory stores standing in for
 * Redis (they survive a crash), a faulty {@link SimBus} between nodes, and
 * {@link SimClient}s on faulty links. Drive it with {@link Simulation.run} and
 * {@link Simulation.runUntilQuiet}, break it with faults, and check it with
 * {@link Simulation.check}.
 *
 * Presence is on by default and works across nodes (see {@link SimulationOptions.presence}):
 * a client that calls `subscribePresence` converges, after quiet, to whether each subject
 * has a connected device, wherever the two are connected, through drops, partitions (once
 * healed) and crashes. A simulation without presence subscriptions sends nothing more over
 * the bus and draws nothing more from the seed than one without presence.
 * @example
 * const sim = createSimulation({ seed: 42, nodes: 3, bus: { drop: 0.05 } });
 * const alice = sim.client("alice"), bob = sim.client("bob");
 * alice.send(bob.user, "hi");
 * await sim.runUntilQuiet();
 * sim.assertInvariants();
 */
export class Simulation {
  /** The seed of this run. */
  readonly seed: number | string;
  /** The virtual clock every node and link runs on. */
  readonly clock: ManualClock;
  /** The seeded random source every fault draws from. */
  readonly random: RandomSource;
  /** The bus between nodes (faults, partitions). */
  readonly bus: SimBus;
  /** The shared session directory (Redis in production). */
  readonly directory = new MemorySessionDirectory();
  /** The shared device registry. */
  readonly devices = new MemoryDeviceRegistry();
  /** The shared sequence store. */
  readonly sequences = new MemorySequenceStore();
  /** The shared message store. */
  readonly messages = new MemoryMessageStore();
  /** The shared queue store. */
  readonly queueStore = new MemoryQueueStore();
  /** The shared receipt store (each node runs its own ReceiptTracker over it). */
  readonly receiptStore = new MemoryReceiptStore();
  /** The shared presence store: device records and their owning nodes (built-in presence). */
  readonly presenceStore = new MemoryPresenceStore();
  readonly #presence: SimPresenceShared = { store: this.presenceStore, watchers: new Map() };
  readonly #presenceResyncMs: number | undefined;
  #presenceOverridden = false;
  readonly #trace: TraceBuffer;
  readonly #opts: SimulationOptions;
  readonly #nodes: NodeState[] = [];
  readonly #clients: SimClient[] = [];
  readonly #clientByKey = new Map<DeviceKey, SimClient>();
  readonly #linkedAt = new Map<DeviceKey, number>();
  #clientFaults: ResolvedFaults;
  #inFlight = 0;
  #lastActivity = 0;
  #messagesSent = 0;
  readonly #failed = new Map<MessageId, Set<DeviceKey>>();
  #cluster: { queue: DeliveryQueue; hooks: Map<NodeId, OutboxHooks> } | undefined;
  readonly #world: ClientWorld;

  constructor(options: SimulationOptions) {
    this.#opts = options;
    this.seed = options.seed;
    this.clock = new ManualClock(options.start ?? 0);
    this.random = seededRandom(options.seed);
    this.#trace = new TraceBuffer(options.traceSize ?? 200);
    this.#lastActivity = this.clock.now();
    this.bus = new SimBus({
      clock: this.clock,
      random: this.random,
      trace: this.#trace,
      faults: options.bus ?? {},
      onActivity: () => {
        this.#lastActivity = this.clock.now();
      },
    });
    this.#clientFaults = resolveFaults(options.clients);
    const reconnect = options.reconnect ?? { min: 50, max: 500 };
    this.#world = {
      clock: this.clock,
      random: this.random,
      trace: this.#trace,
      clientFaults: () => this.#clientFaults,
      gateway: (node) => {
        const n = this.#nodes.find((s) => s.id === node);
        return n?.up ? n.gateway : undefined;
      },
      nodeIds: () => this.#nodes.map((n) => n.id),
      reconnectDelay: () => sampleDelay(reconnect, this.random),
      flight: (d) => {
        this.#inFlight += d;
        this.#lastActivity = this.clock.now();
      },
    };
    const names =
      typeof options.nodes === "object"
        ? options.nodes
        : Array.from({ length: options.nodes ?? 3 }, (_, i) => `n${i + 1}`);
    if (names.length < 1 || new Set(names).size !== names.length) {
      throw new RelayError(
        "invalid_option",
        "Simulation: Expected `nodes` to be >= 1 distinct names",
        {
          path: "nodes",
        },
      );
    }
    if (typeof options.seed !== "number" && typeof options.seed !== "string") {
      throw new RelayError(
        "invalid_option",
        "Simulation: Expected `seed` to be a number or a string",
        {
          path: "seed",
        },
      );
    }
    assertInteger("Simulation", "failureDetectionMs", options.failureDetectionMs ?? 0, 0);
    assertInteger("Simulation", "quietMs", options.quietMs ?? 1, 1);
    const presence = options.presence ?? true;
    if (presence !== false) {
      const resyncMs = presence === true ? undefined : presence.resyncMs;
      this.#presenceResyncMs = assertInteger(
        "Simulation",
        "presence.resyncMs",
        resyncMs ?? 1000,
        1,
      );
    }
    if ((options.outbox ?? "cluster") === "cluster") this.#cluster = this.#makeClusterQueue();
    for (const name of names) this.#nodes.push(this.#boot(name as NodeId, 1));
  }

  // ---- world ------------------------------------------------------------------------

  /** The cluster-wide DeliveryQueue when `outbox` is `"cluster"` (the default). */
  get queue(): DeliveryQueue | undefined {
    return this.#cluster?.queue;
  }

  /** Every node, in order. */
  get nodes(): readonly SimNode[] {
    return this.#nodes;
  }

  /** One node by id. @throws RelayError `invalid_option` for an unknown id */
  node(id: string): SimNode {
    return this.#node(id);
  }

  /** Every client, in creation order. */
  get clients(): readonly SimClient[] {
    return this.#clients;
  }

  /** Messages handed to clients' `send` so far. */
  get messagesSent(): number {
    return this.#messagesSent;
  }

  /**
   * Adds a client device for `user`, links the device (so messages wait for it while it is
   * offline) and connects it unless told not to.
   */
  client(user: string, spec: SimClientSpec = {}): SimClient {
    const u = user as UserId;
    const d = (spec.device ?? "d1") as DeviceId;
    const key = deviceKey(u, d);
    if (this.#clientByKey.has(key)) {
      throw new RelayError("invalid_option", `Simulation: client \`${key}\` already exists`);
    }
    const node = (spec.node ??
      this.#nodes[this.#clients.length % this.#nodes.length]!.id) as NodeId;
    this.#node(node);
    const c = new SimClient(this.#world, {
      user: u,
      device: d,
      node,
      ack: spec.ack ?? "auto",
      autoRead: spec.autoRead ?? false,
      failover: spec.failover ?? true,
    });
    const send = c.send.bind(c);
    c.send = (to, text) => {
      this.#messagesSent++;
      const id = send(to, text);
      this.#trace.add(this.clock.now(), "send", `${key} -> ${to} ${id}`);
      return id;
    };
    this.#clients.push(c);
    this.#clientByKey.set(key, c);
    this.devices.linkSync(u, d);
    this.#linkedAt.set(key, this.clock.now());
    if (spec.connect ?? true) c.connect();
    return c;
  }

  /** Schedules `fn` at virtual time `now + ms` (workloads, fault schedules). */
  at(ms: number, fn: () => void): void {
    this.clock.setTimeout(fn, ms);
  }

  /** Records a line in the trace (tests may add their own markers). */
  note(kind: string, detail: string): void {
    this.#trace.add(this.clock.now(), kind, detail);
  }

  /** Sets client link faults from now on. */
  setClientFaults(faults: LinkFaults): void {
    this.#clientFaults = resolveFaults(faults);
    this.#trace.add(this.clock.now(), "fault", `client links ${JSON.stringify(faults)}`);
  }

  /** Partitions nodes into groups that cannot reach each other. */
  partition(...groups: readonly (readonly string[])[]): void {
    this.bus.partition(...(groups as readonly (readonly NodeId[])[]));
  }

  /** Ends a partition. */
  heal(): void {
    this.bus.heal();
  }

  /**
   * Kills a node: its timers, bus subscriptions, connections and in-memory state are gone;
   * calls it had in flight into shared stores never complete. Its sessions stay in the
   * directory until failure detection drops them.
   */
  crash(id: string): void {
    const n = this.#node(id);
    if (!n.up) return;
    n.up = false;
    n.crashedAt = this.clock.now();
    n.clock.kill();
    n.endpoint.kill();
    this.#cluster?.hooks.delete(n.id);
    this.#trace.add(this.clock.now(), "fault", `crash ${n.id}`);
    for (const c of this.#clients) c.nodeCrashed(n.id);
    const inc = n.incarnation;
    const crashedAt = n.crashedAt;
    this.clock.setTimeout(() => {
      const now = this.#node(id);
      if (now.incarnation !== inc || now.up) return;
      const survivor = this.#nodes.find((s) => s.up);
      this.#trace.add(this.clock.now(), "node", `${n.id} declared dead: sessions dropped`);
      if (survivor) void this.#dropSessions(n.id, survivor.router);
      else void this.directory.dropNode(n.id);
      // Its devices go offline, last seen = the crash (its last heartbeat, to discovery).
      if (survivor?.nodePresence) survivor.nodePresence.expireNode(n.id, crashedAt);
      else void this.presenceStore.expireNode(n.id, crashedAt);
    }, this.#opts.failureDetectionMs ?? 3000);
  }

  /**
   * What discovery does for a dead node: each of its sessions is disconnected through a live
   * router, so the outbox learns the device went away (unless it has another session).
   */
  async #dropSessions(dead: NodeId, via: Router): Promise<void> {
    for (const s of await this.directory.sessionsOf(dead)) await via.disconnect(s.sessionId);
  }

  /** Starts a crashed node again: a fresh process over the same shared stores. */
  restart(id: string): void {
    const old = this.#node(id);
    if (old.up) return;
    const i = this.#nodes.indexOf(old);
    const n = this.#boot(old.id, old.incarnation + 1, old.crashedAt);
    this.#nodes[i] = n;
    this.#trace.add(this.clock.now(), "fault", `restart ${n.id} (incarnation ${n.incarnation})`);
  }

  /** Connects every client that is not online (to its own node, or wherever failover takes it). */
  connectAll(): void {
    for (const c of this.#clients) if (!c.wantsOnline) c.connect();
  }

  // ---- time -------------------------------------------------------------------------

  /** Advances virtual time by `ms`, firing every event on the way and settling async work after each. */
  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    await settle();
    for (;;) {
      const due = this.clock.nextDue();
      if (due === undefined || due > end) break;
      this.clock.advanceTo(due);
      await settle();
    }
    this.clock.advanceTo(end);
    await settle();
  }

  /**
   * Runs until nothing is in flight and no event happens for `quietMs` (or `limitMs` of
   * virtual time passed). Resolves to true when quiet was reached. Time stops at the last
   * event, not at the end of the quiet window.
   */
  async runUntilQuiet(limitMs = 600_000): Promise<boolean> {
    const end = this.clock.now() + limitMs;
    const quietMs = this.#opts.quietMs ?? 10_000;
    await settle();
    for (;;) {
      const due = this.clock.nextDue();
      if (this.#inFlight === 0 && this.bus.inFlight === 0) {
        if (due === undefined || due - this.#lastActivity > quietMs) return true;
      }
      if (due === undefined || due > end) {
        this.clock.advanceTo(end);
        await settle();
        return false;
      }
      this.clock.advanceTo(due);
      await settle();
    }
  }

  // ---- checks -----------------------------------------------------------------------

  /** The messages whose senders got `sent` (or `failed`), with the devices each is owed to. */
  sentMessages(): SentMessage[] {
    const byUser = new Map<UserId, SimClient[]>();
    for (const c of this.#clients) {
      let list = byUser.get(c.user);
      if (!list) {
        list = [];
        byUser.set(c.user, list);
      }
      list.push(c);
    }
    const out: SentMessage[] = [];
    for (const c of this.#clients) {
      for (const o of c.outgoing) {
        if (o.id === undefined || (o.state !== "sent" && o.state !== "failed")) continue;
        const ts = o.ts ?? Number.POSITIVE_INFINITY;
        const recipients: DeviceKey[] = [];
        const candidates =
          o.to === c.user
            ? (byUser.get(c.user) ?? [])
            : [...(byUser.get(o.to) ?? []), ...(byUser.get(c.user) ?? [])];
        for (const other of candidates) {
          if (other === c) continue;
          if ((this.#linkedAt.get(other.key) ?? 0) > ts) continue;
          recipients.push(other.key);
        }
        out.push({ id: o.id, clientId: o.clientId, from: c.user, sender: c.key, recipients });
      }
    }
    return out;
  }

  /**
   * Deliveries the routers gave up on (message id -> devices), as the routers' `failed`
   * events said: the server's truth, whether or not the sender's `failed` receipt arrived.
   */
  failedDeliveries(): ReadonlyMap<MessageId, ReadonlySet<DeviceKey>> {
    return this.#failed;
  }

  /** What every client saw, for the checkers. */
  deviceViews(): DeviceView[] {
    return this.#clients.map((c) => ({
      device: c.key,
      online: c.online,
      received: c.received,
      receipts: c.receipts,
    }));
  }

  /**
   * Sizes of internal state that must return to 0 once every device is connected and has
   * acked everything: queue entries (store and each live queue), stored relay messages,
   * stale sessions, and packets in flight.
   */
  sizes(): Record<string, number> {
    const online = this.#clients.filter((c) => c.online).length;
    // Known router gap: a message that failed for a device stays in the relay store (nothing
    // tells the store the device will never have it), so failed messages are not counted.
    let lingering = 0;
    for (const id of this.#failed.keys()) if (this.messages.getSync(id)) lingering++;
    const out: Record<string, number> = {
      "queueStore.entries": this.queueStore.size,
      "messages.stored": this.messages.size - lingering,
      "directory.staleSessions": Math.max(0, this.directory.size - online),
      "bus.inFlight": this.bus.inFlight,
      "links.inFlight": this.#inFlight,
    };
    if (this.#cluster) out["queue.depth"] = this.#cluster.queue.depth;
    for (const n of this.#nodes) if (n.up && n.queue) out[`${n.id}.queue.depth`] = n.queue.depth;
    return out;
  }

  /**
   * One observation per (connected device, subscribed subject): the presence that device last
   * saw, for {@link checkPresence}. A disconnected viewer is left out: nothing can reach it.
   */
  presenceObservations(): PresenceObservation[] {
    const out: PresenceObservation[] = [];
    for (const c of this.#clients) {
      if (!c.online) continue;
      for (const subject of c.subscriptions) {
        out.push({ viewer: c.key, subject, seen: c.presence.get(subject)?.status });
      }
    }
    return out;
  }

  /** Whether some device of the user is connected now (the truth presence converges to). */
  isOnline(user: string): boolean {
    return this.#clients.some((c) => c.user === user && c.online);
  }

  /**
   * A user's presence now as the cluster shares it (the built-in presence's store): what a
   * viewer subscribing now would be shown.
   */
  presenceOf(user: string): UserPresence {
    return readShared(this.presenceStore, user as UserId, this.clock.now());
  }

  /**
   * Runs every invariant checker on the run so far. `bounded-state` is checked only when every
   * client is online (otherwise queues legitimately hold messages for offline devices);
   * `presence` by default when the built-in presence runs on every node (a `presence` adapter
   * from the `gateway` option may not converge across nodes: ask for it then).
   */
  check(options: { bounded?: boolean; presence?: boolean } = {}): Violation[] {
    const views = this.deviceViews();
    const sent = this.sentMessages();
    const out = [
      ...checkNoLoss(sent, views),
      ...checkNoDuplicates(views),
      ...checkFifo(views),
      ...checkReceiptsMonotonic(views, sent),
    ];
    const allOnline = this.#clients.every((c) => c.online);
    if (options.bounded ?? allOnline) out.push(...checkBounded(this.sizes()));
    const builtIn = this.#presenceResyncMs !== undefined && !this.#presenceOverridden;
    if (options.presence ?? builtIn) {
      out.push(...checkPresence(this.presenceObservations(), (u) => this.isOnline(u)));
    }
    return out;
  }

  /**
   * Throws an Error naming the seed, the violations and the last trace events when any
   * invariant is broken.
   */
  assertInvariants(options: { bounded?: boolean; presence?: boolean } = {}): void {
    const v = this.check(options);
    if (v.length > 0) throw new Error(this.report(v));
  }

  /** A readable failure report: seed, trace hash, violations (first 20) and the last trace events. */
  report(violations: readonly Violation[] = this.check(), lastEvents = 60): string {
    const lines = [
      `simulation seed=${JSON.stringify(this.seed)} t=${this.clock.now()} trace=${this.#trace.hash} (${this.#trace.count} events)`,
      `${violations.length} violation(s):`,
      ...violations.slice(0, 20).map((v) => `  [${v.invariant}] ${v.message}`),
      `last ${lastEvents} events:`,
      this.#trace.format(lastEvents),
    ];
    return lines.join("\n");
  }

  /** The trace: recent events as text (`last` of them), with the run's fingerprint. */
  trace(last?: number): string {
    return `seed=${JSON.stringify(this.seed)} hash=${this.#trace.hash}\n${this.#trace.format(last)}`;
  }

  /** The fingerprint of every event so far: equal for equal seeds and workloads. */
  get traceHash(): string {
    return this.#trace.hash;
  }

  /** How many events were traced. */
  get traceCount(): number {
    return this.#trace.count;
  }

  /** Stops every node (clears timers). The simulation cannot run afterwards. */
  async close(): Promise<void> {
    for (const n of this.#nodes) {
      n.up = false;
      n.clock.kill();
      n.endpoint.kill();
    }
    this.#cluster?.queue.close();
  }

  // ---- internals --------------------------------------------------------------------

  #node(id: string): NodeState {
    const n = this.#nodes.find((s) => s.id === id);
    if (!n) throw new RelayError("invalid_option", `Simulation: unknown node \`${id}\``);
    return n;
  }

  #queueOptions(clock: NodeClock | ManualClock) {
    return {
      clock,
      random: this.random,
      retry: { ...DEFAULT_RETRY, ...this.#opts.retry },
      window: this.#opts.window ?? 1,
      ttlMs: this.#opts.ttlMs ?? 3_600_000,
      ackGraceMs: this.#opts.ackGraceMs ?? 2000,
      load: new LoadSignal({ clock, histogram: false }),
      storeRetry: false as const,
    };
  }

  #makeClusterQueue(): { queue: DeliveryQueue; hooks: Map<NodeId, OutboxHooks> } {
    const hooks = new Map<NodeId, OutboxHooks>();
    const any = (): OutboxHooks | undefined => hooks.values().next().value;
    const queue = new DeliveryQueue({
      ...this.#queueOptions(this.clock),
      store: this.queueStore,
      transmit: (device, envelope, attempt) => any()?.transmit(device, envelope, attempt),
      onFailed: (envelope, device, reason) => any()?.onFailed(envelope, device, reason),
      onUnresponsive: (device) => any()?.onUnresponsive?.(device),
    });
    return { queue, hooks };
  }

  #boot(id: NodeId, incarnation: number, crashedAt?: number): NodeState {
    const clock = new NodeClock(this.clock);
    const alive = () => clock.alive;
    const endpoint = this.bus.endpoint(id);
    const ctx: SimNodeContext = {
      nodeId: id,
      incarnation,
      clock,
      random: this.random,
      queueStore: fence(this.queueStore, alive),
      fence: (t) => fence(t, alive),
    };
    const mode = this.#opts.outbox ?? "cluster";
    let queue: DeliveryQueue | undefined;
    let outbox: OutboxFactory | undefined;
    if (mode === "per-node") {
      outbox = (hooks) => {
        const q = new DeliveryQueue({
          ...this.#queueOptions(clock),
          store: ctx.queueStore,
          sharedStore: true,
          ...hooks,
        });
        queue = q;
        return q;
      };
    } else if (mode === "cluster") {
      const cluster = this.#cluster!;
      outbox = (hooks) => {
        cluster.hooks.set(id, hooks);
        const q = cluster.queue;
        // This node's view of the shared queue: closing the node leaves the queue running.
        return {
          enqueue: (e, r, o) => q.enqueue(e, r, o),
          ack: (d, ids) => q.ack(d, ids),
          deviceConnected: (d) => q.deviceConnected(d),
          deviceDisconnected: (d) => q.deviceDisconnected(d),
          checkDuplicate: (u, c) => q.checkDuplicate(u, c),
          close: () => {},
          // The in-process fast path, while this node lives (a dead node starts nothing new).
          get sync() {
            return alive() ? q.sync : undefined;
          },
        };
      };
    } else if (typeof mode === "function") {
      outbox = mode(ctx);
    }
    const ids = sequentialIds(`${id}.${incarnation}.`);
    const extra = this.#opts.router?.(ctx) ?? {};
    const routerOptions: RouterOptions = {
      nodeId: id,
      directory: ctx.fence(this.directory),
      devices: ctx.fence(this.devices),
      sequences: ctx.fence(this.sequences),
      messages: ctx.fence(this.messages),
      bus: endpoint,
      receipts: new ReceiptTracker({ clock, store: ctx.fence(this.receiptStore) }),
      clock,
      ids,
      ...(outbox ? { outbox } : {}),
      ...(this.#opts.hooks ? { hooks: this.#opts.hooks } : {}),
      ...extra,
    };
    const router = new Router(routerOptions);
    const trace = this.#trace;
    router.on("failed", (e, device, reason) => {
      let set = this.#failed.get(e.id);
      if (!set) {
        set = new Set();
        this.#failed.set(e.id, set);
      }
      set.add(device);
      trace.add(this.clock.now(), "node", `${id} failed ${e.id} for ${device}: ${reason}`);
    });
    router.on("error", (err) => {
      trace.add(this.clock.now(), "node", `${id} error ${err.code}: ${err.message}`);
    });
    const gatewayExtra = this.#opts.gateway?.(ctx, router) ?? {};
    if (gatewayExtra.presence !== undefined) this.#presenceOverridden = true;
    let gateway: Gateway<SimCredentials> | undefined;
    const nodePresence =
      this.#presenceResyncMs === undefined || gatewayExtra.presence !== undefined
        ? undefined
        : new NodePresence({
            nodeId: id,
            clock,
            shared: this.#presence,
            bus: endpoint,
            router,
            resyncMs: this.#presenceResyncMs,
            send: (connection, frame) => gateway?.sendTo(connection, frame),
          });
    gateway = new Gateway<SimCredentials>({
      clock,
      ids,
      ...(nodePresence ? { presence: nodePresence } : {}),
      ...gatewayExtra,
      router,
      authenticate: (c) => ({ userId: c.user, deviceId: c.device }),
    });
    gateway.on("error", (err) => {
      trace.add(this.clock.now(), "node", `${id} gateway error ${err.code}: ${err.message}`);
    });
    void router.start();
    nodePresence?.start(incarnation > 1 ? crashedAt : undefined);
    if (incarnation > 1) {
      // A restarted process first forgets its previous sessions, then takes back its queue.
      void this.#dropSessions(id, router).then(async () => {
        if (queue && clock.alive) {
          const n = await queue.recover({
            online: (d) =>
              this.directory
                .lookupSync(splitDeviceKey(d).userId)
                .some((s) => s.deviceId === splitDeviceKey(d).deviceId),
          });
          trace.add(this.clock.now(), "node", `${id} recovered ${n} queue entries`);
        }
      });
    }
    return {
      id,
      up: true,
      incarnation,
      router,
      gateway,
      queue,
      presence: nodePresence?.tracker,
      nodePresence,
      crashedAt: undefined,
      clock,
      endpoint,
    };
  }
}

/** Builds a {@link Simulation}. */
export function createSimulation(options: SimulationOptions): Simulation {
  return new Simulation(options);
}

/** Message ids a device got, for quick assertions in tests. */
export function receivedIds(client: SimClient): MessageId[] {
  return client.received.map((r) => r.id);
}
