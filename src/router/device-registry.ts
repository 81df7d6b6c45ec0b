import { type DeviceId, type DeviceKey, deviceKey, type UserId } from "../core/ids.js";
import type { MaybePromise } from "../core/maybe.js";

/**
 * The devices each user has linked: the set a message is addressed to, whether or not the
 * device is connected right now (offline devices get it from the outbox when they return).
 * @remarks It knows nothing of connections; that is the SessionDirectory's job. Like every
 * port, a method may answer at once (in memory) or with a promise; callers `await` it.
 */
export interface DeviceRegistry {
  /** Links a device to a user (idempotent). */
  link(userId: UserId, deviceId: DeviceId): MaybePromise<void>;
  /** Unlinks a device: it no longer receives messages. */
  unlink(userId: UserId, deviceId: DeviceId): MaybePromise<void>;
  /** Every linked device of a user, in link order. */
  devices(userId: UserId): MaybePromise<readonly DeviceId[]>;
  /**
   * Optional: {@link devices} as {@link DeviceKey}s, the same strings every time (a group
   * fan-out then builds no key per recipient). Without it the router builds the keys.
   */
  keys?(userId: UserId): MaybePromise<readonly DeviceKey[]>;
  /**
   * Optional: a number that changes whenever a link or unlink changes what {@link keys}
   * answers (read synchronously). With it and {@link keys}, the router reuses a group's
   * recipient list while the members and the revision stay the same.
   */
  readonly revision?: number;
}

/** The in-memory {@link DeviceRegistry}: it answers at once, never with a promise. */
export class MemoryDeviceRegistry implements DeviceRegistry {
  readonly #devices = new Map<UserId, DeviceId[]>();
  /** Each user's device keys, replaced (never changed) when a device is linked or unlinked. */
  readonly #keys = new Map<UserId, readonly DeviceKey[]>();
  #revision = 0;

  /** Changes with every link or unlink that changes a user's devices. */
  get revision(): number {
    return this.#revision;
  }

  link(userId: UserId, deviceId: DeviceId): void {
    this.linkSync(userId, deviceId);
  }

  /** Synchronous {@link link}. */
  linkSync(userId: UserId, deviceId: DeviceId): void {
    let list = this.#devices.get(userId);
    if (!list) {
      list = [];
      this.#devices.set(userId, list);
    }
    if (list.includes(deviceId)) return;
    list.push(deviceId);
    this.#revision++;
    this.#keys.set(
      userId,
      Object.freeze([...(this.#keys.get(userId) ?? []), deviceKey(userId, deviceId)]),
    );
  }

  unlink(userId: UserId, deviceId: DeviceId): void {
    const list = this.#devices.get(userId);
    if (!list) return;
    const i = list.indexOf(deviceId);
    if (i < 0) return;
    list.splice(i, 1);
    this.#revision++;
    if (list.length === 0) {
      this.#devices.delete(userId);
      this.#keys.delete(userId);
    } else {
      this.#keys.set(userId, Object.freeze(list.map((d) => deviceKey(userId, d))));
    }
  }

  devices(userId: UserId): readonly DeviceId[] {
    return this.devicesSync(userId);
  }

  /** Synchronous {@link devices}; a live view, copy before keeping. */
  devicesSync(userId: UserId): readonly DeviceId[] {
    return this.#devices.get(userId) ?? NONE;
  }

  keys(userId: UserId): readonly DeviceKey[] {
    return this.keysSync(userId);
  }

  /** Synchronous {@link keys}: a frozen array, safe to keep. */
  keysSync(userId: UserId): readonly DeviceKey[] {
    return this.#keys.get(userId) ?? NO_KEYS;
  }
}

const NONE: readonly DeviceId[] = Object.freeze([]);
const NO_KEYS: readonly DeviceKey[] = Object.freeze([]);
