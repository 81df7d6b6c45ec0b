import type { Timer } from "../core/clock.js";
import {
  type DeviceKey,
  deviceKey,
  type NodeId,
  type SessionId,
  type UserId,
} from "../core/ids.js";
import type { Session } from "../core/types.js";
import { type Connection, type GatewayPresence, presenceBridge } from "../gateway/index.js";
import {
  type MemoryPresenceStore,
  type PresenceHandle,
  PresenceTracker,
  presenceOf,
  type UserPresence,
} from "../presence/index.js";
import type { ClientFrameOf, ErrorFrame, PresenceFrame } from "../protocol/index.js";
import type { BusPacket, Router } from "../router/index.js";
import type { NodeClock } from "./fence.js";
import type { SimBusEndpoint } from "./sim-bus.js";

/**
 * The activity threshold of simulated presence: never reached. Simulated clients send no
 * heartbeats, so a user is online exactly while one of its devices is connected.
 */
export const SIM_PRESENCE_THRESHOLD_MS = Number.MAX_SAFE_INTEGER;

/** The bus `control` op that tells a node some users' shared presence changed. */
const PRESENCE_OP = "presence.changed";

/** What every node of a simulation shares for presence (Redis in a real deployment). */
export interface SimPresenceShared {
  /** Device records with their owning node. */
  readonly store: MemoryPresenceStore;
  /** Which nodes hold connections subscribed to each subject (whom to tell of a change). */
  readonly watchers: Map<UserId, Set<NodeId>>;
}

/** What one {@link NodePresence} is built from. */
export interface NodePresenceOptions {
  readonly nodeId: NodeId;
  /** The node's clock: its timers die with the process, and `alive` fences shared state. */
  readonly clock: NodeClock;
  readonly shared: SimPresenceShared;
  readonly bus: SimBusEndpoint;
  readonly router: Router;
  /** How often watched subjects are re-read from the store (repairs lost notifications). */
  readonly resyncMs: number;
  /** Writes a frame to one of this node's connections (the gateway's `sendTo`). */
  readonly send: (connection: Connection, frame: PresenceFrame) => void;
}

interface Subscription {
  readonly connection: Connection;
  /** Each subject it watches and what it was last shown of it (`status|lastSeen`). */
  readonly shown: Map<UserId, string>;
}

/**
 * One simulated node's presence, the in-memory counterpart of the Redis node's: a
 * {@link PresenceTracker} for this node's devices (activity, typing), their records written
 * to the shared {@link MemoryPresenceStore} under this node's ownership, and the node's
 * subscribed connections shown the shared status of their subjects.
 * @remarks A change is announced over the simulated bus to the nodes watching the user, so
 * drops and partitions apply; every `resyncMs` a node with subscribers re-reads what they
 * watch, which repairs lost announcements. A device's record is written as connected when
 * it connects here, and as disconnected when its last session here ends, unless another
 * node owns it by then (the device moved): checked and written in one synchronous turn.
 * The hooks are synchronous and send nothing while nobody watches, so a run without
 * subscriptions has the same events as one without presence (typing aside: it goes through
 * the tracker, as on a Redis node).
 */
export class NodePresence implements GatewayPresence {
  /** This node's tracker (activity, typing, device records). */
  readonly tracker: PresenceTracker;
  readonly #o: NodePresenceOptions;
  readonly #bridge: GatewayPresence;
  readonly #handles = new Map<SessionId, PresenceHandle>();
  readonly #local = new Map<DeviceKey, Set<SessionId>>();
  readonly #subs = new Map<SessionId, Subscription>();
  readonly #bySubject = new Map<UserId, Set<SessionId>>();
  #resync: Timer | undefined;

  constructor(options: NodePresenceOptions) {
    this.#o = options;
    this.tracker = new PresenceTracker({
      clock: options.clock,
      thresholdMs: SIM_PRESENCE_THRESHOLD_MS,
      graceMs: 0,
      coalesceMs: 0,
    });
    // Only typing goes through the bridge: the tracker has no subscribers of its own.
    this.#bridge = presenceBridge(this.tracker, options.router);
    void options.bus.subscribe(options.nodeId, (p) => this.#onPacket(p));
  }

  /**
   * Boots the node's presence: takes a lease in the store, and on a restart first expires
   * what the previous incarnation still owned (last seen = `crashedAt`).
   */
  start(crashedAt: number | undefined): void {
    const o = this.#o;
    if (crashedAt !== undefined) this.expireNode(o.nodeId, crashedAt);
    // The simulation's failure detection stands in for the lease's TTL (see `expireNode`).
    void o.shared.store.heartbeat(o.nodeId, o.clock.now(), SIM_PRESENCE_THRESHOLD_MS);
  }

  /**
   * A node is dead (discovery, or its own restart): its connected records become
   * disconnected with last seen `lastHeartbeat`, it stops watching, and whoever watches the
   * affected users is told.
   */
  expireNode(dead: NodeId, lastHeartbeat: number): void {
    const { shared } = this.#o;
    for (const [subject, nodes] of shared.watchers) {
      nodes.delete(dead);
      if (nodes.size === 0) shared.watchers.delete(subject);
    }
    void shared.store.expireNode(dead, lastHeartbeat).then((users) => {
      if (this.#alive()) this.#changed(users);
    });
  }

  /** The shared presence of a user now, as any node reads it. */
  read(user: UserId): UserPresence {
    return readShared(this.#o.shared.store, user, this.#o.clock.now());
  }

  // ---- GatewayPresence ----------------------------------------------------------------

  connected(session: Session): void {
    if (!this.#alive()) return;
    const { userId, deviceId, sessionId } = session;
    this.#handles.set(sessionId, this.tracker.connect(userId, deviceId, sessionId));
    const key = deviceKey(userId, deviceId);
    let sessions = this.#local.get(key);
    if (!sessions) {
      sessions = new Set();
      this.#local.set(key, sessions);
    }
    sessions.add(sessionId);
    // Connecting here claims the device's record, whoever owned it before.
    void this.#o.shared.store.write({
      userId,
      deviceId,
      nodeId: this.#o.nodeId,
      connected: true,
      lastActive: this.#lastActive(userId, deviceId),
    });
    this.#changed([userId]);
  }

  disconnected(session: Session, clean: boolean): void {
    if (!this.#alive()) return;
    const { userId, deviceId, sessionId } = session;
    this.#handles.delete(sessionId);
    this.#dropSubscriptions(sessionId);
    this.tracker.disconnect(userId, deviceId, { clean, sessionId });
    const key = deviceKey(userId, deviceId);
    const sessions = this.#local.get(key);
    if (!sessions?.delete(sessionId)) return;
    if (sessions.size > 0) return; // another session of the device is still here
    this.#local.delete(key);
    const { store } = this.#o.shared;
    const now = this.#o.clock.now();
    const stored = store.readSync(userId, now).find((r) => r.deviceId === deviceId);
    if (stored && stored.nodeId !== this.#o.nodeId) return; // the device moved on
    void store.write({
      userId,
      deviceId,
      nodeId: this.#o.nodeId,
      connected: false,
      lastActive: Math.max(
        this.#lastActive(userId, deviceId),
        stored?.lastActive ?? Number.NEGATIVE_INFINITY,
      ),
    });
    this.#changed([userId]);
  }

  touch(connection: Connection): void {
    const handle = this.#handles.get(connection.session.sessionId);
    if (handle !== undefined) this.tracker.touchDevice(handle);
  }

  subscribe(viewer: Connection, users: readonly UserId[]): void {
    if (!this.#alive()) return;
    const id = viewer.session.sessionId;
    let sub = this.#subs.get(id);
    if (!sub) {
      sub = { connection: viewer, shown: new Map() };
      this.#subs.set(id, sub);
    }
    for (const user of users) {
      let viewers = this.#bySubject.get(user);
      if (!viewers) {
        viewers = new Set();
        this.#bySubject.set(user, viewers);
        this.#watch(user);
      }
      viewers.add(id);
      sub.shown.delete(user); // a subscribe always gets the current state
      this.#show(sub, user);
    }
    this.#armResync();
  }

  unsubscribe(viewer: Connection, users: readonly UserId[]): void {
    const id = viewer.session.sessionId;
    const sub = this.#subs.get(id);
    if (!sub) return;
    for (const user of users) {
      sub.shown.delete(user);
      this.#unview(id, user);
    }
    if (sub.shown.size === 0) this.#subs.delete(id);
    this.#armResync();
  }

  typing(from: Connection, frame: ClientFrameOf<"typing">): Promise<ErrorFrame | undefined> {
    return this.#bridge.typing(from, frame);
  }

  // ---- internals ----------------------------------------------------------------------

  #alive(): boolean {
    return this.#o.clock.alive;
  }

  #lastActive(user: UserId, device: string): number {
    for (const d of this.tracker.devices(user)) if (d.deviceId === device) return d.lastActive;
    return this.#o.clock.now();
  }

  #watch(user: UserId): void {
    const { watchers } = this.#o.shared;
    let nodes = watchers.get(user);
    if (!nodes) {
      nodes = new Set();
      watchers.set(user, nodes);
    }
    nodes.add(this.#o.nodeId);
  }

  #unview(id: SessionId, user: UserId): void {
    const viewers = this.#bySubject.get(user);
    if (!viewers?.delete(id) || viewers.size > 0) return;
    this.#bySubject.delete(user);
    if (!this.#alive()) return;
    const { watchers } = this.#o.shared;
    const nodes = watchers.get(user);
    nodes?.delete(this.#o.nodeId);
    if (nodes?.size === 0) watchers.delete(user);
  }

  #dropSubscriptions(id: SessionId): void {
    const sub = this.#subs.get(id);
    if (!sub) return;
    this.#subs.delete(id);
    for (const user of sub.shown.keys()) this.#unview(id, user);
    this.#armResync();
  }

  /** Shows `sub` the shared presence of `subject` unless it is what it was last shown. */
  #show(sub: Subscription, subject: UserId): void {
    const p = this.read(subject);
    const shown = `${p.status}|${p.lastSeen}`;
    if (sub.shown.get(subject) === shown) return;
    sub.shown.set(subject, shown);
    this.#o.send(sub.connection, {
      type: "presence",
      user: subject,
      status: p.status,
      lastSeen: p.lastSeen,
    });
  }

  #showLocal(user: UserId): void {
    for (const id of this.#bySubject.get(user) ?? []) {
      const sub = this.#subs.get(id);
      if (sub) this.#show(sub, user);
    }
  }

  /** These users' shared presence may have changed: update viewers here, tell watching nodes. */
  #changed(users: readonly UserId[]): void {
    const me = this.#o.nodeId;
    const remote = new Map<NodeId, UserId[]>();
    for (const user of users) {
      this.#showLocal(user);
      for (const node of this.#o.shared.watchers.get(user) ?? []) {
        if (node === me) continue;
        let list = remote.get(node);
        if (!list) {
          list = [];
          remote.set(node, list);
        }
        list.push(user);
      }
    }
    for (const [node, list] of remote) {
      void this.#o.bus.publish(node, {
        kind: "control",
        from: me,
        op: PRESENCE_OP,
        data: { users: list },
      });
    }
  }

  #onPacket(packet: BusPacket): void {
    if (packet.kind !== "control" || packet.op !== PRESENCE_OP || !this.#alive()) return;
    const users = (packet.data as { users?: unknown }).users;
    if (!Array.isArray(users)) return;
    for (const u of users) if (typeof u === "string") this.#showLocal(u as UserId);
  }

  /** Runs the resync timer while some connection here watches someone. */
  #armResync(): void {
    const clock = this.#o.clock;
    if (this.#subs.size === 0) {
      clock.clear(this.#resync);
      this.#resync = undefined;
    } else if (this.#resync === undefined && this.#alive()) {
      this.#resync = clock.setInterval(() => {
        for (const user of this.#bySubject.keys()) this.#showLocal(user);
      }, this.#o.resyncMs);
    }
  }
}

/** The shared presence of `user` at `now`, from the store's records. */
export function readShared(store: MemoryPresenceStore, user: UserId, now: number): UserPresence {
  return presenceOf(store.readSync(user, now), now, SIM_PRESENCE_THRESHOLD_MS);
}
