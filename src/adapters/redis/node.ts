import { Redis } from "ioredis";
import { z } from "zod";
import {
  type Clock,
  type DeviceKey,
  deviceKey,
  type IdSource,
  type MaybePromise,
  type NodeId,
  parseOptions,
  RelayError,
  type Session,
  type SessionId,
  splitDeviceKey,
  systemClock,
  systemIds,
  type Timer,
  TypedEmitter,
  type UserId,
} from "../../core/index.js";
import { Discovery, type NodeInfo } from "../../discovery/index.js";
import {
  type Authenticate,
  type Connection,
  Gateway,
  type GatewayPresence,
  presenceBridge,
} from "../../gateway/index.js";
import {
  GroupDirectory,
  type GroupRequest,
  type GroupResponse,
  GroupService,
  GroupSharder,
  MAX_GROUP_HOPS,
} from "../../groups/index.js";
import {
  applyVisibility,
  type PresenceStore,
  PresenceTracker,
  type PrivacyHook,
  presenceOf,
  type UserPresence,
  visibleToEveryone,
} from "../../presence/index.js";
import type { PresenceFrame } from "../../protocol/index.js";
import { DeliveryQueue, type DeliveryQueueOptions, type QueuedMessage } from "../../queue/index.js";
import { ReceiptTracker } from "../../receipts/index.js";
import type { BusPacket, Outbox, SessionDirectory } from "../../router/index.js";
import { Router } from "../../router/index.js";
import { HashRing } from "../../sharding/index.js";
import { RedisDeviceRegistry } from "./device-registry.js";
import { RedisGroupStore } from "./group-store.js";
import type { RedisClient } from "./lua-script.js";
import { RedisNodeBus } from "./node-bus.js";
import { RedisNodeRegistry } from "./node-registry.js";
import { RedisPresenceStore } from "./presence-store.js";
import { RedisQueueStore } from "./queue-store.js";
import { RedisReceiptStore } from "./receipt-store.js";
import { isRedisClient } from "./redis-call.js";
import { RelayQueueStore } from "./relay-queue-store.js";
import { RedisSequenceStore } from "./sequence-store.js";
import { RedisSessionDirectory } from "./session-directory.js";

/** Queue options a {@link RedisNode} passes through to its {@link DeliveryQueue}. */
export type RedisNodeQueueOptions = Omit<
  DeliveryQueueOptions,
  "transmit" | "onFailed" | "store" | "clock"
>;

/** Options of {@link createRedisNode}. */
export interface RedisNodeOptions<C = unknown> {
  /** A Redis URL (the node owns that client) or a connected ioredis client (not closed by the node). */
  readonly redis: string | RedisClient;
  /** Decides who a connection is (the gateway's hook). */
  readonly authenticate: Authenticate<C>;
  /** Namespace of every key and channel; all nodes of one cluster share it. @default "rk" */
  readonly prefix?: string;
  /** Readable base of the node id; a random suffix makes it fresh per start. @default "node" */
  readonly name?: string;
  /** How long the node stays live without a heartbeat. @default 10000 */
  readonly ttlMs?: number;
  /** Heartbeat (and presence lease) period. @default ttlMs / 3 */
  readonly heartbeatMs?: number;
  /**
   * How often the node re-reads from Redis the queue entries of its connected devices and the
   * presence of the users watched from here (covers lost bus packets, lost presence notices
   * and races between a reconnect and a send elsewhere). @default 5000
   */
  readonly resyncMs?: number;
  /**
   * How often this node expires stored entries no node holds (devices offline everywhere), so
   * their senders get `failed` when the TTL runs out. Every node does it; removal decides who
   * reports. @default 60000
   */
  readonly expirySweepMs?: number;
  /** Presence: online while a device was active within this many ms. @default 10000 */
  readonly presenceThresholdMs?: number;
  /** Decides what a viewer may see of a subject's presence. @default visibleToEveryone */
  readonly privacy?: PrivacyHook;
  /** Published in the registry (e.g. the gateway URL). @default {} */
  readonly meta?: Record<string, string>;
  /** Passed to the node's DeliveryQueue (retry policy, TTL, window...). */
  readonly queue?: RedisNodeQueueOptions;
  /**
   * The most one Redis operation may take, retries included: past it a frame that needed it
   * is refused with `store_unavailable` (retryable). Pings never wait on Redis. @default 2000
   */
  readonly storeTimeoutMs?: number;
  /** @default systemClock */
  readonly clock?: Clock;
  /** Ids of messages, sessions and the node's suffix. @default systemIds() */
  readonly ids?: IdSource;
}

/** Subjects whose presence one repair step re-reads at once. */
const REPAIR_CHUNK = 200;

const schema = z.object({
  redis: z.union([z.string().min(1), z.custom<RedisClient>(isRedisClient, "an ioredis client")]),
  authenticate: z.custom<Authenticate>((v) => typeof v === "function", "a function"),
  prefix: z
    .string()
    .regex(/^[^{}\s]+$/, "a non-empty string without braces or spaces")
    .default("rk"),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, `_`, `.` or `-`")
    .default("node"),
  ttlMs: z.int().min(100).default(10_000),
  heartbeatMs: z.int().min(10).optional(),
  resyncMs: z.int().min(10).default(5_000),
  expirySweepMs: z.int().min(10).default(60_000),
  presenceThresholdMs: z.int().min(1).default(10_000),
  meta: z.record(z.string(), z.string()).default({}),
  privacy: z.custom<PrivacyHook>((v) => typeof v === "function", "a function").optional(),
  queue: z.record(z.string(), z.unknown()).optional(),
  storeTimeoutMs: z.int().min(1).default(2_000),
  clock: z.custom<Clock>((v) => typeof v === "object" && v !== null).optional(),
  ids: z.custom<IdSource>((v) => typeof v === "object" && v !== null).optional(),
});

/** Events of a {@link RedisNode}. */
export interface RedisNodeEvents {
  /** Something failed in the background (Redis, bus, discovery); the node carries on and retries. */
  error: (error: RelayError) => void;
  /** This node claimed a dead node and handled it (sessions dropped, presence expired). */
  nodeExpired: (node: NodeInfo, users: readonly UserId[]) => void;
  /** Others considered this node dead (or Redis lost its data): its sessions were registered again. */
  selfExpired: () => void;
}

/**
 * One relaykit node on Redis: every port on Redis, a Router, a Gateway with presence, groups,
 * and Discovery. Run one per process, any number of processes on one Redis; attach a socket
 * server to {@link RedisNode.gateway} (e.g. `createWsGateway` from `relaykit/ws`).
 *
 * Delivery across nodes: a device's queue entries live in Redis and are scheduled by the node
 * holding its connection. The node that accepts a message stores it, transmits to its own
 * devices, and tells the nodes holding the other recipients to load it; a device that
 * (re)connects anywhere loads what waits for it. So no accepted message depends on one node:
 * when a node dies, its users reconnect elsewhere and get everything unacked.
 * @example
 * const node = await createRedisNode({ redis: "redis://127.0.0.1:6379", authenticate });
 * createWsGateway({ gateway: node.gateway, port: 8081 });
 */
export class RedisNode<C = unknown> extends TypedEmitter<RedisNodeEvents> {
  /** This process's node id (fresh per start). */
  readonly nodeId: NodeId;
  readonly router: Router;
  readonly gateway: Gateway<C>;
  /** This node's group service (on the shared RedisGroupStore). */
  readonly groups: GroupService;
  /**
   * The cluster-wide face of the groups: a group's questions go to the node the ring names
   * as its owner (so one node serialises its membership changes), answered here when the
   * owner does not answer in time (the store is shared, so any node can).
   */
  readonly groupDirectory: GroupDirectory;
  /** The live nodes on a consistent-hash ring, kept by discovery: joins add, deaths remove. */
  get ring(): HashRing<NodeId> {
    return this.#ring;
  }
  /** The node-local presence tracker (activity, typing); shared presence is in {@link presenceStore}. */
  readonly presence: PresenceTracker;
  readonly presenceStore: PresenceStore;
  readonly discovery: Discovery;
  /** The node's DeliveryQueue (entries of the devices connected here). */
  readonly queue: DeliveryQueue;
  /** The ioredis client in use. */
  readonly redis: RedisClient;
  readonly #owned: boolean;
  readonly #bus: RedisNodeBus;
  readonly #local: LocalDirectory;
  readonly #clock: Clock;
  readonly #threshold: number;
  readonly #privacy: PrivacyHook;
  readonly #ttlMs: number;
  readonly #heartbeatMs: number;
  readonly #resyncMs: number;
  readonly #expirySweepMs: number;
  readonly #subs = new Map<UserId, Set<UserId>>();
  readonly #shown = new Map<string, string>();
  readonly #dirty = new Set<UserId>();
  readonly #held = new Set<DeviceKey>();
  readonly #toLoad = new Set<DeviceKey>();
  readonly #store: RelayQueueStore;
  #loading: Promise<void> | undefined;
  readonly #unsubscribe: (() => Promise<void>)[] = [];
  #presenceTimer: Timer | undefined;
  #ring: HashRing<NodeId>;
  #resyncTimer: Timer | undefined;
  /** A presence repair pass is running (see {@link resync}). */
  #repairing = false;
  #expiryTimer: Timer | undefined;
  #closing: Promise<void> | undefined;

  /** Use {@link createRedisNode}, which also starts it. @throws RelayError `invalid_option` */
  constructor(options: RedisNodeOptions<C>) {
    super();
    const o = parseOptions(schema, options, "RedisNode");
    const clock = options.clock ?? systemClock;
    const ids = options.ids ?? systemIds();
    this.#clock = clock;
    this.#threshold = o.presenceThresholdMs;
    this.#privacy = options.privacy ?? visibleToEveryone;
    this.#ttlMs = o.ttlMs;
    this.#heartbeatMs = o.heartbeatMs ?? Math.max(10, Math.floor(o.ttlMs / 3));
    this.#resyncMs = o.resyncMs;
    this.#expirySweepMs = o.expirySweepMs;
    if (this.#heartbeatMs >= this.#ttlMs) {
      throw new RelayError(
        "invalid_option",
        `RedisNode: Expected \`heartbeatMs\` to be < ttlMs (${this.#ttlMs}), got \`${this.#heartbeatMs}\` (number)`,
      );
    }
    this.nodeId = `${o.name}.${ids
      .next("")
      .replace(/[^A-Za-z0-9]/g, "")
      .slice(-10)}` as NodeId;
    if (typeof options.redis === "string") {
      const client = new Redis(options.redis, {
        lazyConnect: false,
        commandTimeout: o.storeTimeoutMs,
        enableOfflineQueue: true,
        maxRetriesPerRequest: 20,
        retryStrategy: (times) => Math.min(50 * times, 1_000),
      });
      // A lost Redis must not crash the node: ioredis reconnects, commands retry.
      client.on("error", () => {});
      this.redis = client;
      this.#owned = true;
    } else {
      this.redis = options.redis;
      this.#owned = false;
    }
    const redis = this.redis;
    const prefix = o.prefix;
    const common = { redis, prefix, clock, retry: { timeoutMs: o.storeTimeoutMs } };
    const report = (e: unknown) => this.#report(e);

    this.#bus = new RedisNodeBus({ ...common, onError: report });
    this.#local = new LocalDirectory(new RedisSessionDirectory(common), this.nodeId, (device) =>
      this.#releaseDevice(device),
    );
    this.presenceStore = new RedisPresenceStore(common);
    this.groups = new GroupService({ store: new RedisGroupStore(common), clock, ids });
    this.#ring = new HashRing<NodeId>({ nodes: [this.nodeId] });
    this.groupDirectory = new GroupDirectory({
      sharder: new GroupSharder({ ring: this.#ring, nodeId: this.nodeId }),
      service: this.groups,
      sharedStore: true,
      ids,
      forward: async (owner, request) => {
        try {
          return (await this.router.request(owner, "groups", request, 2000)) as GroupResponse;
        } catch {
          // The owner is gone or slow: the store is shared, so answer here.
          return this.groupDirectory.handle({ ...request, hops: MAX_GROUP_HOPS });
        }
      },
    });
    const queueStore = new RelayQueueStore(new RedisQueueStore(common));
    this.#store = queueStore;
    let queue: DeliveryQueue | undefined;
    this.router = new Router({
      nodeId: this.nodeId,
      directory: this.#local,
      devices: new RedisDeviceRegistry(common),
      bus: this.#bus,
      sequences: new RedisSequenceStore(common),
      receipts: new ReceiptTracker({ store: new RedisReceiptStore(common), clock }),
      groups: this.groupDirectory,
      clock,
      ids,
      // Last-seen times would live in one node's memory: a node could unlink a device that
      // only ever came back through another node. Off until there is a Redis LastSeenStore.
      staleDevices: false,
      outbox: (hooks) => {
        queue = new DeliveryQueue({
          // Nodes share the store: an entry acked through another node (a device that moved
          // before this node let go of it) is dropped here, never retried or failed.
          sharedStore: true,
          ...((options.queue ?? {}) as RedisNodeQueueOptions),
          store: queueStore,
          clock,
          ...hooks,
        });
        return this.#outbox(queue);
      },
    });
    this.queue = queue!;
    this.queue.on("storeError", (e) => report(e));
    this.router.on("error", report);
    this.groups.on("system", ({ groupId, event }) => {
      this.router.postSystem(groupId, event).catch(report);
    });

    this.presence = new PresenceTracker({ clock, thresholdMs: o.presenceThresholdMs });
    this.presence.on("change", (user) => {
      void this.#publishPresence(user);
    });
    this.gateway = new Gateway<C>({
      router: this.router,
      authenticate: options.authenticate,
      presence: this.#gatewayPresence(presenceBridge(this.presence, this.router)),
      clock,
      ids,
    });
    this.gateway.on("error", report);

    this.discovery = new Discovery({
      registry: new RedisNodeRegistry(common),
      nodeId: this.nodeId,
      ttlMs: o.ttlMs,
      intervalMs: this.#heartbeatMs,
      meta: o.meta,
      clock,
      onExpired: (node) => this.#onNodeExpired(node),
    });
    this.discovery.on("error", report);
    this.discovery.on("nodeJoined", (n) => {
      if (!this.#ring.has(n.nodeId)) this.#reshape((ring) => ring.add(n.nodeId));
    });
    this.discovery.on("nodeLeft", (id) => {
      if (id !== this.nodeId && this.#ring.has(id)) this.#reshape((ring) => ring.remove(id));
    });
    this.router.handle("groups", (request) => this.groupDirectory.handle(request as GroupRequest));
    this.discovery.on("selfExpired", () => {
      this.#reregister().catch(report);
    });
  }

  /** Applies a membership change to the ring and hands the groups that move to their owners. */
  #reshape(change: (ring: HashRing<NodeId>) => void): void {
    const next = this.#ring.clone();
    change(next);
    if (next.size === 0) next.add(this.nodeId);
    this.#ring = next;
    this.groupDirectory.setRing(next);
    this.groupDirectory.rebalance().catch((e: unknown) => this.#report(e));
  }

  /** Subscribes to the bus, registers the node and starts its timers. Called by {@link createRedisNode}. */
  async start(): Promise<void> {
    await this.router.start();
    this.#unsubscribe.push(
      await this.#bus.subscribe(this.#queueChannel(this.nodeId), (p) => this.#onQueuePacket(p)),
      await this.#bus.subscribe(this.#allChannel(), (p) => this.#onBroadcast(p)),
    );
    await this.discovery.start();
    await this.presenceStore.heartbeat(this.nodeId, this.#clock.now(), this.#ttlMs);
    this.#presenceTimer = this.#clock.setInterval(() => {
      this.#presenceTick().catch((e: unknown) => this.#report(e));
    }, this.#heartbeatMs);
    this.#resyncTimer = this.#clock.setInterval(() => {
      this.resync().catch((e: unknown) => this.#report(e));
    }, this.#resyncMs);
    this.#expiryTimer = this.#clock.setInterval(() => {
      this.queue.expireStored().catch((e: unknown) => this.#report(e));
    }, this.#expirySweepMs);
  }

  /** The shared presence of a user as of now (read from Redis). */
  async presenceOf(user: UserId): Promise<UserPresence> {
    const now = this.#clock.now();
    return presenceOf(await this.presenceStore.read(user, now), now, this.#threshold);
  }

  /** Devices connected to this node now. */
  localDevices(): DeviceKey[] {
    return this.#local.devices();
  }

  /**
   * Re-reads from Redis the queue entries of every device connected here and the presence of
   * every user watched from here (the timer runs it every `resyncMs`), and lets go of devices
   * no longer here. Pub/sub may lose a presence notice; this repairs what a viewer was shown.
   */
  async resync(): Promise<void> {
    for (const d of [...this.#held]) if (!this.#local.has(d)) this.#releaseDevice(d);
    const devices = this.#local.devices();
    if (devices.length > 0) {
      await this.#load(devices);
      for (const d of devices) {
        if (this.#local.has(d) && !this.queue.isOnline(d)) this.queue.deviceConnected(d);
      }
    }
    if (this.#subs.size > 0 && !this.#repairing) {
      // One pass at a time, in chunks: a slow Redis must not pile passes up or flood it.
      this.#repairing = true;
      try {
        const subjects = [...this.#subs.keys()];
        for (let i = 0; i < subjects.length; i += REPAIR_CHUNK) {
          await this.#changed(subjects.slice(i, i + REPAIR_CHUNK));
        }
      } finally {
        this.#repairing = false;
      }
    }
  }

  /**
   * Leaves the cluster cleanly: closes every connection (clients reconnect elsewhere),
   * deregisters, stops timers and releases Redis (when the node owns the client).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#clock.clear(this.#presenceTimer);
      this.#clock.clear(this.#resyncTimer);
      this.#clock.clear(this.#expiryTimer);
      await this.gateway.close().catch((e: unknown) => this.#report(e));
      await this.discovery.stop().catch((e: unknown) => this.#report(e));
      for (const u of this.#unsubscribe.splice(0)) await u().catch(() => {});
      await this.router.close();
      this.presence.close();
      await this.#bus.close();
      if (this.#owned) {
        await Promise.race([
          this.redis.quit().catch(() => {}),
          new Promise<void>((r) => this.#clock.setTimeout(r, 1_000)),
        ]);
        this.redis.disconnect();
      }
    })();
    return this.#closing;
  }

  // ---- delivery ------------------------------------------------------------------------

  /** The router's outbox: the queue, scoped to the devices connected here. */
  #outbox(queue: DeliveryQueue): Outbox {
    const local = () => this.#local;
    return {
      enqueue: async (envelope, recipients, options) => {
        const result = await queue.enqueue(envelope, recipients, {
          ...options,
          online: (d) => local().has(d),
        });
        const stored = this.#store.appended(envelope.id);
        if (!result.ok) return result;
        const remote: DeviceKey[] = [];
        for (const d of recipients) {
          if (local().has(d)) this.#held.add(d);
          else {
            queue.release(d);
            remote.push(d);
          }
        }
        if (remote.length > 0) {
          this.#tellOwners(remote, stored).catch((e: unknown) => this.#report(e));
        }
        return result;
      },
      ack: (device, ids) => queue.ack(device, ids),
      deviceConnected: async (device) => {
        await this.#load([device]);
        if (local().has(device)) queue.deviceConnected(device);
      },
      // Entries are let go when the last session here goes (see LocalDirectory).
      deviceDisconnected: () => {},
      checkDuplicate: (sender, clientId) => queue.checkDuplicate(sender, clientId),
      close: () => queue.close(),
    };
  }

  /**
   * Loads these devices' entries from Redis (those connected here). Loads coalesce: while one
   * runs, requests gather and the next run takes them all, so a burst of sends to a device
   * costs a few reads of its entries, not one per message. Resolves once they are loaded.
   */
  #load(devices: readonly DeviceKey[]): Promise<void> {
    for (const d of devices) {
      if (!this.#local.has(d)) continue;
      this.#held.add(d);
      this.#toLoad.add(d);
    }
    if (this.#toLoad.size === 0) return this.#loading ?? Promise.resolve();
    this.#loading ??= (async () => {
      try {
        while (this.#toLoad.size > 0) {
          const batch = [...this.#toLoad];
          this.#toLoad.clear();
          await this.queue.recover({ devices: batch });
        }
      } finally {
        this.#loading = undefined;
      }
    })();
    return this.#loading;
  }

  /**
   * Holds entries a bus packet carried for a device connected here, without reading Redis
   * (they are stored there already: the accepting node appended them before telling).
   */
  #adopt(device: DeviceKey, messages: readonly QueuedMessage[]): void {
    if (!this.#local.has(device)) return;
    this.#held.add(device);
    this.#store
      .primed(device, messages, () => this.queue.recover({ devices: [device] }))
      .catch((e: unknown) => this.#report(e));
  }

  #releaseDevice(device: DeviceKey): void {
    this.#held.delete(device);
    this.queue.release(device);
  }

  /**
   * Tells the nodes holding these devices about their new entry: the packet carries it (when
   * known), so the owner holds it without reading it back; without it the owner loads.
   */
  async #tellOwners(devices: readonly DeviceKey[], stored?: QueuedMessage): Promise<void> {
    const users = [...new Set(devices.map((d) => splitDeviceKey(d).userId))];
    const wanted = new Set(devices);
    const sessions = await this.#local.lookupMany(users);
    const byNode = new Map<NodeId, Set<DeviceKey>>();
    for (const list of sessions.values()) {
      for (const s of list) {
        const d = deviceKey(s.userId, s.deviceId);
        if (!wanted.has(d) || s.nodeId === this.nodeId) continue;
        let set = byNode.get(s.nodeId);
        if (!set) {
          set = new Set();
          byNode.set(s.nodeId, set);
        }
        set.add(d);
      }
    }
    await Promise.all(
      [...byNode].map(([node, set]) =>
        this.#bus.publish(this.#queueChannel(node), {
          kind: "control",
          from: this.nodeId,
          op: "load",
          data: stored ? { devices: [...set], messages: [stored] } : { devices: [...set] },
        }),
      ),
    );
  }

  #onQueuePacket(packet: BusPacket): void {
    if (packet.kind !== "control" || packet.op !== "load") return;
    const { devices, messages } = packet.data as { devices?: unknown; messages?: unknown };
    if (!Array.isArray(devices)) return;
    if (Array.isArray(messages) && messages.every(isQueuedMessage)) {
      for (const d of devices) if (typeof d === "string") this.#adopt(d as DeviceKey, messages);
      return;
    }
    this.#load(devices.filter((d): d is DeviceKey => typeof d === "string")).catch((e: unknown) =>
      this.#report(e),
    );
  }

  // ---- discovery -------------------------------------------------------------------------

  /** A dead node this node claimed: drop its sessions, expire its presence, let its devices' entries be taken over. */
  async #onNodeExpired(node: NodeInfo): Promise<void> {
    const dropped = await this.router.directory.dropNode(node.nodeId);
    const expired = await this.presenceStore.expireNode(node.nodeId, node.lastHeartbeat);
    const users = [...new Set([...expired, ...dropped.map((s) => s.userId)])];
    await this.#broadcast("expired", {
      node: node.nodeId,
      users,
      devices: dropped.map((s) => deviceKey(s.userId, s.deviceId)),
    });
    this.emit("nodeExpired", node, users);
  }

  /** Others dropped this node (a pause past the TTL, or Redis lost its data): come back whole. */
  async #reregister(): Promise<void> {
    await this.presenceStore.heartbeat(this.nodeId, this.#clock.now(), this.#ttlMs);
    const users = new Set<UserId>();
    for (const s of this.#local.sessions()) {
      await this.router.connect(s);
      users.add(s.userId);
    }
    for (const u of users) await this.#writePresence(u);
    if (users.size > 0) await this.#broadcast("presence", { users: [...users] });
    this.emit("selfExpired");
  }

  // ---- presence --------------------------------------------------------------------------

  #gatewayPresence(base: GatewayPresence): GatewayPresence {
    return {
      // Presence writes never fail a connection: a Redis hiccup is reported, the next
      // activity sync or change writes again.
      connected: async (session) => {
        await base.connected(session);
        await this.#publishPresence(session.userId);
      },
      disconnected: async (session, clean) => {
        await base.disconnected(session, clean);
        if (!this.#local.hasUser(session.userId)) this.#dropViewer(session.userId);
        await this.#publishPresence(session.userId);
      },
      touch: (conn) => {
        base.touch(conn);
        this.#dirty.add(conn.session.userId);
      },
      subscribe: async (viewer: Connection, users) => {
        const me = viewer.session.userId;
        for (const u of users) {
          let set = this.#subs.get(u);
          if (!set) {
            set = new Set();
            this.#subs.set(u, set);
          }
          set.add(me);
          this.#shown.delete(`${me}\u0000${u}`);
        }
        await Promise.all(users.map((u) => this.#show(me, u)));
      },
      unsubscribe: (viewer: Connection, users) => {
        const me = viewer.session.userId;
        for (const u of users) this.#unwatch(me, u);
      },
      typing: (from, frame) => base.typing(from, frame),
    };
  }

  #unwatch(viewer: UserId, subject: UserId): void {
    const set = this.#subs.get(subject);
    set?.delete(viewer);
    if (set?.size === 0) this.#subs.delete(subject);
    this.#shown.delete(`${viewer}\u0000${subject}`);
  }

  #dropViewer(viewer: UserId): void {
    for (const [subject, set] of [...this.#subs])
      if (set.has(viewer)) this.#unwatch(viewer, subject);
  }

  /** Sends `viewer` the shared presence of `subject` unless it is what it was last shown. */
  async #show(viewer: UserId, subject: UserId, known?: UserPresence): Promise<void> {
    const p = applyVisibility(
      known ?? (await this.presenceOf(subject)),
      this.#privacy(viewer, subject),
    );
    const frame: PresenceFrame = {
      type: "presence",
      user: subject,
      status: p.status,
      lastSeen: p.status === "online" ? null : p.lastSeen,
    };
    const key = `${viewer}\u0000${subject}`;
    const shown = `${frame.status}|${frame.lastSeen}`;
    if (this.#shown.get(key) === shown) return;
    this.#shown.set(key, shown);
    await this.router.toUser(viewer, frame);
  }

  /** Some users' presence may have changed (anywhere): update the viewers watching them from here. */
  async #changed(users: readonly UserId[]): Promise<void> {
    await Promise.all(
      users.map(async (u) => {
        if (!this.#subs.get(u)?.size) return;
        // One read per subject, however many viewers watch it from here.
        const p = await this.presenceOf(u);
        await Promise.all([...(this.#subs.get(u) ?? [])].map((v) => this.#show(v, u, p)));
      }),
    );
  }

  /** Writes the records of a user's devices that this node owns to the shared store. */
  async #writePresence(user: UserId): Promise<void> {
    for (const r of this.presence.devices(user)) {
      const record = { ...r, userId: user, nodeId: this.nodeId };
      // Not connected here: only overwrite a record this node still owns (atomically: the
      // device may be connecting to another node right now).
      if (this.#local.has(deviceKey(user, r.deviceId))) await this.presenceStore.write(record);
      else await this.presenceStore.writeIfOwner(record);
    }
  }

  /** Writes a user's records here and tells every node; reports failures, never rejects. */
  async #publishPresence(user: UserId): Promise<void> {
    try {
      await this.#writePresence(user);
      await this.#broadcast("presence", { users: [user] });
    } catch (e) {
      this.#report(e);
    }
  }

  async #presenceTick(): Promise<void> {
    await this.presenceStore.heartbeat(this.nodeId, this.#clock.now(), this.#ttlMs);
    const users = [...this.#dirty];
    this.#dirty.clear();
    for (const u of users) if (this.#local.hasUser(u)) await this.#writePresence(u);
  }

  // ---- broadcast -----------------------------------------------------------------------

  #allChannel(): NodeId {
    return "~all" as NodeId;
  }

  #queueChannel(node: NodeId): NodeId {
    return `${node}~q` as NodeId;
  }

  async #broadcast(op: "presence" | "expired", data: Record<string, unknown>): Promise<void> {
    try {
      await this.#bus.publish(this.#allChannel(), { kind: "control", from: this.nodeId, op, data });
    } catch (e) {
      this.#report(e);
    }
  }

  #onBroadcast(packet: BusPacket): void {
    if (packet.kind !== "control") return;
    const data = packet.data as { users?: unknown; devices?: unknown };
    const users = Array.isArray(data.users)
      ? data.users.filter((u): u is UserId => typeof u === "string")
      : [];
    this.#changed(users).catch((e: unknown) => this.#report(e));
    if (packet.op === "expired" && Array.isArray(data.devices)) {
      const devices = data.devices.filter((d): d is DeviceKey => typeof d === "string");
      this.#load(devices).catch((e: unknown) => this.#report(e));
    }
  }

  #report(e: unknown): void {
    const err =
      e instanceof RelayError
        ? e
        : new RelayError("internal", e instanceof Error ? e.message : String(e), { cause: e });
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }
}

/**
 * Assembles one relaykit node on Redis and starts it (bus subscription, registration,
 * heartbeats). Use a fresh process (or at least a fresh node) per start: the id is new each time.
 * @throws RelayError `invalid_option`; `store_unavailable` when Redis cannot be reached.
 */
export async function createRedisNode<C = unknown>(
  options: RedisNodeOptions<C>,
): Promise<RedisNode<C>> {
  const node = new RedisNode<C>(options);
  try {
    await node.start();
  } catch (e) {
    await node.close().catch(() => {});
    throw e;
  }
  return node;
}

/**
 * The shared session directory, plus which sessions are on this node: the node's queue
 * holds a device's entries only while a session of it is here, and lets them go (to whoever
 * the device reconnects to) when the last one ends.
 */
class LocalDirectory implements SessionDirectory {
  readonly #inner: SessionDirectory;
  readonly #nodeId: NodeId;
  readonly #onGone: (device: DeviceKey) => void;
  readonly #sessions = new Map<SessionId, Session>();
  readonly #byDevice = new Map<DeviceKey, Set<SessionId>>();
  readonly #byUser = new Map<UserId, number>();

  constructor(inner: SessionDirectory, nodeId: NodeId, onGone: (device: DeviceKey) => void) {
    this.#inner = inner;
    this.#nodeId = nodeId;
    this.#onGone = onGone;
  }

  has(device: DeviceKey): boolean {
    return this.#byDevice.has(device);
  }

  hasUser(user: UserId): boolean {
    return this.#byUser.has(user);
  }

  devices(): DeviceKey[] {
    return [...this.#byDevice.keys()];
  }

  sessions(): Session[] {
    return [...this.#sessions.values()];
  }

  async register(session: Session): Promise<void> {
    if (session.nodeId === this.#nodeId && !this.#sessions.has(session.sessionId)) {
      this.#sessions.set(session.sessionId, session);
      const d = deviceKey(session.userId, session.deviceId);
      let set = this.#byDevice.get(d);
      if (!set) {
        set = new Set();
        this.#byDevice.set(d, set);
      }
      set.add(session.sessionId);
      this.#byUser.set(session.userId, (this.#byUser.get(session.userId) ?? 0) + 1);
    }
    await this.#inner.register(session);
  }

  async unregister(sessionId: SessionId): Promise<Session | undefined> {
    this.#forget(sessionId);
    return this.#inner.unregister(sessionId);
  }

  #forget(sessionId: SessionId): void {
    const s = this.#sessions.get(sessionId);
    if (!s) return;
    this.#sessions.delete(sessionId);
    const d = deviceKey(s.userId, s.deviceId);
    const set = this.#byDevice.get(d);
    set?.delete(sessionId);
    const n = (this.#byUser.get(s.userId) ?? 1) - 1;
    if (n <= 0) this.#byUser.delete(s.userId);
    else this.#byUser.set(s.userId, n);
    if (set?.size === 0) {
      this.#byDevice.delete(d);
      this.#onGone(d);
    }
  }

  lookup(userId: UserId): MaybePromise<readonly Session[]> {
    return this.#inner.lookup(userId);
  }

  lookupMany(userIds: readonly UserId[]): MaybePromise<ReadonlyMap<UserId, readonly Session[]>> {
    return this.#inner.lookupMany(userIds);
  }

  sessionsOf(nodeId: NodeId): MaybePromise<readonly Session[]> {
    return this.#inner.sessionsOf(nodeId);
  }

  dropNode(nodeId: NodeId): MaybePromise<readonly Session[]> {
    return this.#inner.dropNode(nodeId);
  }
}

/** A queue entry as a bus packet carries it (checked shallowly: it came from a node of ours). */
function isQueuedMessage(v: unknown): v is QueuedMessage {
  const m = v as Partial<QueuedMessage> | null;
  return (
    typeof m === "object" &&
    m !== null &&
    typeof m.envelope?.id === "string" &&
    typeof m.expiresAt === "number" &&
    typeof m.enqueuedAt === "number"
  );
}
