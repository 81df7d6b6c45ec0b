import {
  type DeviceKey,
  deviceKey,
  type NodeId,
  type SessionId,
  type UserId,
} from "../core/ids.js";
import type { MaybePromise } from "../core/maybe.js";
import type { Session } from "../core/types.js";

/**
 * Where a user's devices are connected: user -> live sessions, many devices per user.
 * @remarks It does not decide liveness: a node's sessions go when that node unregisters
 * them or when discovery calls {@link SessionDirectory.dropNode}. A method may answer at once
 * (in memory) or with a promise; callers `await` it.
 */
export interface SessionDirectory {
  /** Records a live session (replacing one with the same `sessionId`). */
  register(session: Session): MaybePromise<void>;
  /** Forgets one session; unknown ids are ignored. Returns the session if it was there. */
  unregister(sessionId: SessionId): MaybePromise<Session | undefined>;
  /** Every live session of a user, oldest first. */
  lookup(userId: UserId): MaybePromise<readonly Session[]>;
  /** Sessions of many users at once (group fan-out), keyed by user. */
  lookupMany(userIds: readonly UserId[]): MaybePromise<ReadonlyMap<UserId, readonly Session[]>>;
  /** Every session owned by a node. */
  sessionsOf(nodeId: NodeId): MaybePromise<readonly Session[]>;
  /** Drops every session owned by a node that stopped heartbeating; returns what it dropped. */
  dropNode(nodeId: NodeId): MaybePromise<readonly Session[]>;
  /**
   * Optional, for a directory in this process: the live sessions of one device, answered at
   * once (a view: copy it before keeping it). With it the router asks per delivery, at the
   * moment it transmits, instead of looking up every recipient of each message first.
   */
  lookupDeviceSync?(device: DeviceKey): readonly Session[];
}

/** The in-memory {@link SessionDirectory}: one process, no services; it answers at once. */
export class MemorySessionDirectory implements SessionDirectory {
  readonly #byUser = new Map<UserId, Session[]>();
  readonly #byId = new Map<SessionId, Session>();
  readonly #byNode = new Map<NodeId, Set<SessionId>>();
  readonly #byDevice = new Map<DeviceKey, Session[]>();

  register(session: Session): void {
    this.registerSync(session);
  }

  /** Synchronous {@link register}, for hot paths inside one process. */
  registerSync(session: Session): void {
    this.unregisterSync(session.sessionId);
    this.#byId.set(session.sessionId, session);
    let list = this.#byUser.get(session.userId);
    if (!list) {
      list = [];
      this.#byUser.set(session.userId, list);
    }
    list.push(session);
    const key = deviceKey(session.userId, session.deviceId);
    const forDevice = this.#byDevice.get(key);
    if (forDevice) forDevice.push(session);
    else this.#byDevice.set(key, [session]);
    let node = this.#byNode.get(session.nodeId);
    if (!node) {
      node = new Set();
      this.#byNode.set(session.nodeId, node);
    }
    node.add(session.sessionId);
  }

  unregister(sessionId: SessionId): Session | undefined {
    return this.unregisterSync(sessionId);
  }

  /** Synchronous {@link unregister}. */
  unregisterSync(sessionId: SessionId): Session | undefined {
    const s = this.#byId.get(sessionId);
    if (!s) return undefined;
    this.#byId.delete(sessionId);
    const list = this.#byUser.get(s.userId);
    if (list) {
      const i = list.indexOf(s);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.#byUser.delete(s.userId);
    }
    const key = deviceKey(s.userId, s.deviceId);
    const forDevice = this.#byDevice.get(key);
    if (forDevice) {
      const i = forDevice.indexOf(s);
      if (i >= 0) forDevice.splice(i, 1);
      if (forDevice.length === 0) this.#byDevice.delete(key);
    }
    const node = this.#byNode.get(s.nodeId);
    node?.delete(sessionId);
    if (node?.size === 0) this.#byNode.delete(s.nodeId);
    return s;
  }

  lookup(userId: UserId): readonly Session[] {
    return this.lookupSync(userId);
  }

  /** Synchronous {@link lookup}. The array is a live view: copy it before keeping it. */
  lookupSync(userId: UserId): readonly Session[] {
    return this.#byUser.get(userId) ?? EMPTY;
  }

  /** The live sessions of one device, oldest first: a live view, copy it before keeping it. */
  lookupDeviceSync(device: DeviceKey): readonly Session[] {
    return this.#byDevice.get(device) ?? EMPTY;
  }

  lookupMany(userIds: readonly UserId[]): ReadonlyMap<UserId, readonly Session[]> {
    const out = new Map<UserId, readonly Session[]>();
    for (const u of userIds) out.set(u, [...(this.#byUser.get(u) ?? EMPTY)]);
    return out;
  }

  sessionsOf(nodeId: NodeId): readonly Session[] {
    return [...(this.#byNode.get(nodeId) ?? [])].map((id) => this.#byId.get(id)!);
  }

  dropNode(nodeId: NodeId): readonly Session[] {
    const dropped = this.sessionsOf(nodeId);
    for (const s of dropped) this.unregisterSync(s.sessionId);
    return dropped;
  }

  /** How many sessions are live. */
  get size(): number {
    return this.#byId.size;
  }
}

const EMPTY: readonly Session[] = Object.freeze([]);
