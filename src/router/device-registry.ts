import type { DeviceId, UserId } from "../core/ids.js";

/**
 * The devices each user has linked: the set a message is addressed to, whether or not the
 * device is connected right now (offline devices get it from the outbox when they return).
 * @remarks It knows nothing of connections; that is the SessionDirectory's job.
 */
export interface DeviceRegistry {
  /** Links a device to a user (idempotent). */
  link(userId: UserId, deviceId: DeviceId): Promise<void>;
  /** Unlinks a device: it no longer receives messages. */
  unlink(userId: UserId, deviceId: DeviceId): Promise<void>;
  /** Every linked device of a user, in link order. */
  devices(userId: UserId): Promise<readonly DeviceId[]>;
}

/** The in-memory {@link DeviceRegistry}. */
export class MemoryDeviceRegistry implements DeviceRegistry {
  readonly #devices = new Map<UserId, DeviceId[]>();

  async link(userId: UserId, deviceId: DeviceId): Promise<void> {
    this.linkSync(userId, deviceId);
  }

  /** Synchronous {@link link}. */
  linkSync(userId: UserId, deviceId: DeviceId): void {
    let list = this.#devices.get(userId);
    if (!list) {
      list = [];
      this.#devices.set(userId, list);
    }
    if (!list.includes(deviceId)) list.push(deviceId);
  }

  async unlink(userId: UserId, deviceId: DeviceId): Promise<void> {
    const list = this.#devices.get(userId);
    if (!list) return;
    const i = list.indexOf(deviceId);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#devices.delete(userId);
  }

  async devices(userId: UserId): Promise<readonly DeviceId[]> {
    return this.devicesSync(userId);
  }

  /** Synchronous {@link devices}; a live view, copy before keeping. */
  devicesSync(userId: UserId): readonly DeviceId[] {
    return this.#devices.get(userId) ?? NONE;
  }
}

const NONE: readonly DeviceId[] = Object.freeze([]);
