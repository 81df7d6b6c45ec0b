/**
 * The pure presence core: a user's status as a function of their device records and the
 * time. No timers, no I/O; {@link PresenceTracker} keeps the records and asks this question.
 */
import type { DeviceId } from "../core/index.js";

/** What presence knows about one device of a user. */
export interface DeviceRecord {
  readonly deviceId: DeviceId;
  /** True while a session of this device is connected. */
  readonly connected: boolean;
  /** Clock time (ms) of the device's last user activity (a send, typing, a read, an `active` frame). */
  readonly lastActive: number;
  /**
   * Until when (Clock ms, exclusive) a device that dropped uncleanly still counts as
   * connected, so a quick reconnect does not flap. Absent or ignored while connected.
   */
  readonly graceUntil?: number | undefined;
}

/**
 * A user's presence as subscribers see it. `lastSeen` is `null` while online (the user is
 * seen now) and when the user was never active; otherwise the newest activity of any device.
 */
export interface UserPresence {
  readonly status: "online" | "offline";
  readonly lastSeen: number | null;
}

/** The presence of a user with no devices at all. */
export const NEVER_SEEN: UserPresence = Object.freeze({ status: "offline", lastSeen: null });

/** True when the device counts as connected at `now` (connected, or inside its grace window). */
export function isPresent(d: DeviceRecord, now: number): boolean {
  return d.connected || (d.graceUntil !== undefined && now < d.graceUntil);
}

/**
 * The user's presence at `now`: `online` while any device is present (connected or in its
 * grace window) and active within `thresholdMs` (strictly: active at `now - thresholdMs` is
 * already offline); otherwise `offline` with `lastSeen` = the newest activity of any device.
 * @example presenceOf([{ deviceId, connected: true, lastActive: 0 }], 9_900, 10_000) // online
 */
export function presenceOf(
  devices: readonly DeviceRecord[],
  now: number,
  thresholdMs: number,
): UserPresence {
  let newest = Number.NEGATIVE_INFINITY;
  for (const d of devices) {
    if (isPresent(d, now) && now - d.lastActive < thresholdMs) {
      return { status: "online", lastSeen: null };
    }
    if (d.lastActive > newest) newest = d.lastActive;
  }
  return { status: "offline", lastSeen: devices.length === 0 ? null : newest };
}

/**
 * The earliest time after `now` at which {@link presenceOf} can change with no new event:
 * for an online user, when the last present-and-active device stops counting (its activity
 * ages past the threshold or its grace window closes); `Infinity` for an offline user, since
 * only an event can bring them back.
 */
export function nextPresenceChange(
  devices: readonly DeviceRecord[],
  now: number,
  thresholdMs: number,
): number {
  let until = Number.NEGATIVE_INFINITY;
  for (const d of devices) {
    if (!isPresent(d, now) || now - d.lastActive >= thresholdMs) continue;
    const end = d.connected
      ? d.lastActive + thresholdMs
      : Math.min(d.lastActive + thresholdMs, d.graceUntil ?? now);
    if (end > until) until = end;
  }
  return until === Number.NEGATIVE_INFINITY ? Number.POSITIVE_INFINITY : until;
}

/** True when two presences are the same state (what "only real changes" compares). */
export function samePresence(a: UserPresence, b: UserPresence): boolean {
  return a.status === b.status && a.lastSeen === b.lastSeen;
}
