import type { Clock, Timer } from "../core/clock.js";
import { type DeviceId, type DeviceKey, deviceKey, type UserId } from "../core/ids.js";
import type { MaybePromise } from "../core/maybe.js";
import { assertInteger } from "../core/options.js";

/** Where each device's last connect or disconnect time is kept. */
export interface LastSeenStore {
  /** Records that a device was seen (connected or disconnected) at `at`. */
  touch(userId: UserId, deviceId: DeviceId, at: number): MaybePromise<void>;
  /** Devices last seen before `before`, oldest first. */
  idleSince(before: number): MaybePromise<readonly { userId: UserId; deviceId: DeviceId }[]>;
  /** Forgets a device (it was unlinked). */
  forget(userId: UserId, deviceId: DeviceId): MaybePromise<void>;
}

/** A {@link LastSeenStore} in this process's memory. */
export class MemoryLastSeenStore implements LastSeenStore {
  readonly #seen = new Map<DeviceKey, { userId: UserId; deviceId: DeviceId; at: number }>();

  touch(userId: UserId, deviceId: DeviceId, at: number): void {
    const key = deviceKey(userId, deviceId);
    this.#seen.delete(key);
    this.#seen.set(key, { userId, deviceId, at });
  }

  idleSince(before: number): { userId: UserId; deviceId: DeviceId }[] {
    const out: { userId: UserId; deviceId: DeviceId }[] = [];
    for (const s of this.#seen.values()) if (s.at < before) out.push(s);
    return out;
  }

  forget(userId: UserId, deviceId: DeviceId): void {
    this.#seen.delete(deviceKey(userId, deviceId));
  }
}

/** Options of {@link StaleDevices}. */
export interface StaleDevicesOptions {
  /** A device not seen for this long is unlinked. @default 30 days */
  readonly idleMs?: number;
  /** How often the sweep runs. @default 1 hour */
  readonly sweepMs?: number;
  /** Where last-seen times live. @default a MemoryLastSeenStore */
  readonly store?: LastSeenStore;
}

/** What {@link StaleDevices} needs from the router. */
export interface StaleDeviceHost {
  /** True when the device has a live session anywhere. */
  isLive(userId: UserId, deviceId: DeviceId): Promise<boolean>;
  /** Unlinks the device and fails its queued entries; false if it turned out live. */
  unlink(userId: UserId, deviceId: DeviceId): Promise<boolean>;
  /** Told of an error in a sweep. */
  report(cause: unknown): void;
}

/** Unlinks devices that have not connected for `idleMs`, checked every `sweepMs` on the clock. */
export class StaleDevices {
  /** The idle limit in ms. */
  readonly idleMs: number;
  /** The sweep interval in ms. */
  readonly sweepMs: number;
  readonly #store: LastSeenStore;
  readonly #clock: Clock;
  readonly #host: StaleDeviceHost;
  #timer: Timer | undefined;
  #running: Promise<number> | undefined;

  constructor(clock: Clock, host: StaleDeviceHost, options: StaleDevicesOptions = {}) {
    this.idleMs = assertInteger("StaleDevices", "idleMs", options.idleMs ?? 30 * 86_400_000, 1);
    this.sweepMs = assertInteger("StaleDevices", "sweepMs", options.sweepMs ?? 3_600_000, 1);
    this.#store = options.store ?? new MemoryLastSeenStore();
    this.#clock = clock;
    this.#host = host;
  }

  /** Starts the periodic sweep (idempotent). */
  start(): void {
    this.#timer ??= this.#clock.setInterval(() => {
      this.sweep().catch((cause: unknown) => this.#host.report(cause));
    }, this.sweepMs);
  }

  /** Records that a device connected or disconnected now. */
  async touch(userId: UserId, deviceId: DeviceId): Promise<void> {
    await this.#store.touch(userId, deviceId, this.#clock.now());
  }

  /** Unlinks every device idle past the limit and not live; resolves to how many. */
  sweep(): Promise<number> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<number> {
    const idle = await this.#store.idleSince(this.#clock.now() - this.idleMs);
    let n = 0;
    for (const { userId, deviceId } of idle) {
      if (await this.#host.isLive(userId, deviceId)) {
        await this.#store.touch(userId, deviceId, this.#clock.now());
        continue;
      }
      if (!(await this.#host.unlink(userId, deviceId))) continue;
      await this.#store.forget(userId, deviceId);
      n++;
    }
    return n;
  }

  /** Stops the sweep. */
  close(): void {
    this.#clock.clear(this.#timer);
    this.#timer = undefined;
  }
}
