import type { DeviceId, DeviceKey, NodeId, UserId } from "../core/index.js";
import { deviceKey, splitDeviceKey } from "../core/index.js";
import type { DeviceRecord } from "./status.js";

/** One device's presence as a node wrote it to the shared store. */
export interface PresenceRecord extends DeviceRecord {
  readonly userId: UserId;
  /** The node holding (or last holding) the device's session: the record's owner. */
  readonly nodeId: NodeId;
}

/**
 * Presence shared between nodes: each node writes its devices' records under a lease it
 * renews by heartbeat; when a node dies its records expire through the lease's TTL, and the
 * user's last seen becomes that node's last heartbeat. Feed what `read` returns to
 * {@link presenceOf}.
 * @remarks It does not compute status, run timers, notify subscribers or apply privacy (the
 * {@link PresenceTracker} does), and it has no clock: callers pass `now`. Records of a node
 * that never heartbeated count as expired.
 */
export interface PresenceStore {
  /** Upserts one device's record (keyed by user and device; the writer becomes its owner). */
  write(record: PresenceRecord): Promise<void>;
  /**
   * Writes the record only if the device's stored record exists and is owned by
   * `record.nodeId`, in one atomic step; returns whether it wrote. A node updating a device
   * that is no longer connected to it uses this, so it never overwrites the record of a
   * device that moved to another node meanwhile.
   */
  writeIfOwner(record: PresenceRecord): Promise<boolean>;
  /** Forgets one device's record; unknown ones are ignored. */
  remove(userId: UserId, deviceId: DeviceId): Promise<void>;
  /**
   * Every device record of a user as of `now`. A connected record whose owner's lease has
   * lapsed reads as disconnected, with `lastActive` = max(its own, the owner's last heartbeat).
   */
  read(userId: UserId, now: number): Promise<readonly PresenceRecord[]>;
  /** Renews `nodeId`'s lease: alive at `at`, expired from `at + ttlMs` unless renewed. */
  heartbeat(nodeId: NodeId, at: number, ttlMs: number): Promise<void>;
  /**
   * Expires a dead node now (discovery saw it go): each connected record it owns becomes
   * disconnected with `lastActive` = max(its own, `lastHeartbeat`), and its lease is dropped.
   * Returns the users affected (once each), so their subscribers can be told.
   */
  expireNode(nodeId: NodeId, lastHeartbeat: number): Promise<readonly UserId[]>;
}

interface Lease {
  readonly at: number;
  readonly until: number;
}

/** The in-memory {@link PresenceStore}: one process, no services. */
export class MemoryPresenceStore implements PresenceStore {
  readonly #byUser = new Map<UserId, Map<DeviceId, PresenceRecord>>();
  readonly #byNode = new Map<NodeId, Set<DeviceKey>>();
  readonly #leases = new Map<NodeId, Lease>();

  async write(record: PresenceRecord): Promise<void> {
    const stored: PresenceRecord = {
      userId: record.userId,
      deviceId: record.deviceId,
      nodeId: record.nodeId,
      connected: record.connected,
      lastActive: record.lastActive,
    };
    this.#unlink(record.userId, record.deviceId);
    let devices = this.#byUser.get(record.userId);
    if (!devices) {
      devices = new Map();
      this.#byUser.set(record.userId, devices);
    }
    devices.set(record.deviceId, stored);
    let owned = this.#byNode.get(record.nodeId);
    if (!owned) {
      owned = new Set();
      this.#byNode.set(record.nodeId, owned);
    }
    owned.add(deviceKey(record.userId, record.deviceId));
  }

  async writeIfOwner(record: PresenceRecord): Promise<boolean> {
    if (this.#byUser.get(record.userId)?.get(record.deviceId)?.nodeId !== record.nodeId) {
      return false;
    }
    await this.write(record);
    return true;
  }

  async remove(userId: UserId, deviceId: DeviceId): Promise<void> {
    this.#unlink(userId, deviceId);
    const devices = this.#byUser.get(userId);
    devices?.delete(deviceId);
    if (devices?.size === 0) this.#byUser.delete(userId);
  }

  async read(userId: UserId, now: number): Promise<readonly PresenceRecord[]> {
    return this.readSync(userId, now);
  }

  /**
   * Synchronous {@link read}: lets one process check a record and write it in the same
   * turn (the simulation's nodes write a device's record only while they still own it).
   */
  readSync(userId: UserId, now: number): readonly PresenceRecord[] {
    const devices = this.#byUser.get(userId);
    if (!devices) return [];
    const out: PresenceRecord[] = [];
    for (const r of devices.values()) {
      const lease = this.#leases.get(r.nodeId);
      if (!r.connected || (lease !== undefined && now < lease.until)) out.push(r);
      else out.push(expired(r, lease?.at));
    }
    return out;
  }

  async heartbeat(nodeId: NodeId, at: number, ttlMs: number): Promise<void> {
    const prev = this.#leases.get(nodeId);
    if (prev && prev.at > at) return; // a late heartbeat never shortens the lease
    this.#leases.set(nodeId, { at, until: at + ttlMs });
  }

  async expireNode(nodeId: NodeId, lastHeartbeat: number): Promise<readonly UserId[]> {
    this.#leases.delete(nodeId);
    const users = new Set<UserId>();
    for (const key of this.#byNode.get(nodeId) ?? []) {
      const { userId: user, deviceId: device } = splitDeviceKey(key);
      const devices = this.#byUser.get(user);
      const r = devices?.get(device);
      if (!devices || !r?.connected) continue;
      devices.set(r.deviceId, expired(r, lastHeartbeat));
      users.add(user);
    }
    return [...users];
  }

  #unlink(userId: UserId, deviceId: DeviceId): void {
    const old = this.#byUser.get(userId)?.get(deviceId);
    if (!old) return;
    const owned = this.#byNode.get(old.nodeId);
    owned?.delete(deviceKey(userId, deviceId));
    if (owned?.size === 0) this.#byNode.delete(old.nodeId);
  }
}

function expired(r: PresenceRecord, lastHeartbeat: number | undefined): PresenceRecord {
  return {
    userId: r.userId,
    deviceId: r.deviceId,
    nodeId: r.nodeId,
    connected: false,
    lastActive: lastHeartbeat === undefined ? r.lastActive : Math.max(r.lastActive, lastHeartbeat),
  };
}
