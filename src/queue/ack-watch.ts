import type { DeviceKey } from "../core/ids.js";

/**
 * Told that a connected device's transmissions went unacked past their ack timeout (the
 * lane's retry delay): the connection may be dead or stuck. The queue does not send the
 * messages again on it (TCP already retransmits on a live connection); it waits
 * `ackGraceMs` more for the acks.
 */
export type ProbeFn = (device: DeviceKey) => void;

/**
 * Told that a connected device left transmissions unacked for their ack timeout plus
 * `ackGraceMs`: the connection stopped acking and should be closed, so the device's next
 * connection gets the redelivery (XEP-0198 resumption, MQTT session resume). Called again
 * every `ackGraceMs` while the device stays connected and silent.
 */
export type UnresponsiveFn = (device: DeviceKey) => void;

/**
 * What the ack watch of one connected device does when its timer fires: tell the caller
 * (`probe`, `unresponsive`) or nothing, when to look again (`Infinity`: nothing in flight),
 * and when the current probe began (`-1`: none).
 */
export interface AckWatchStep {
  readonly action: "none" | "probe" | "unresponsive";
  readonly until: number;
  readonly probedAt: number;
}

/**
 * The ack watch's decision, a pure function. `oldestDue` is the earliest ack deadline of
 * the device's unacked transmissions on this connection (`Infinity` when none; a deadline
 * never moves while its transmission is unacked: nothing is sent twice on one connection);
 * `probedAt` when the current probe began (`-1`: none).
 */
export function ackWatchStep(
  now: number,
  oldestDue: number,
  probedAt: number,
  graceMs: number,
): AckWatchStep {
  const probing = probedAt >= 0 && now < probedAt + graceMs;
  if (oldestDue > now) {
    // Nothing overdue: wait for the first deadline (a probe still running keeps its end).
    if (!probing) return { action: "none", until: oldestDue, probedAt: -1 };
    return { action: "none", until: Math.min(oldestDue, probedAt + graceMs), probedAt };
  }
  if (probing) return { action: "none", until: probedAt + graceMs, probedAt };
  // A transmission overdue when the probe began and still unacked after its grace: the
  // connection stopped acking. Otherwise the overdue ones are newer: a probe of their own.
  const stopped = probedAt >= 0 && oldestDue <= probedAt;
  return { action: stopped ? "unresponsive" : "probe", until: now + graceMs, probedAt: now };
}
