/**
 * Derived statuses: a user's status from their devices, a group's from its members. Pure
 * functions; the tracker and `info` build on them.
 */
import { type DeviceKey, splitDeviceKey, type UserId } from "../core/index.js";
import { type ReceiptState, receiptRank, transition } from "./state.js";

/** A read pointer: everything with `seq <= upTo` in one conversation is read by one user. */
export interface Watermark {
  /** The highest sequence number read. */
  readonly upTo: number;
  /** When the pointer last moved (Clock time). */
  readonly at: number;
}

/**
 * A user's status from their devices' states: `read` when any device read it, `delivered`
 * when any has it; `failed` only when every device failed (failed devices are otherwise left out).
 */
export function userStatus(states: Iterable<ReceiptState>): ReceiptState {
  let best = -1;
  let out: ReceiptState = "failed";
  for (const s of states) {
    if (s === "failed") continue;
    const r = receiptRank(s);
    if (r > best) {
      best = r;
      out = s;
    }
  }
  return out;
}

/**
 * A group's aggregate status from its members' statuses: the highest state every member
 * reached. Members whose every device failed are left out (the sender got `failed` for
 * them); `failed` only when all failed. An empty group is `failed`.
 */
export function groupStatus(statuses: Iterable<ReceiptState>): ReceiptState {
  let worst = Number.POSITIVE_INFINITY;
  let out: ReceiptState = "failed";
  for (const s of statuses) {
    if (s === "failed") continue;
    const r = receiptRank(s);
    if (r < worst) {
      worst = r;
      out = s;
    }
  }
  return out;
}

/** What a viewer may see of a status: `read` shows as `delivered` when read receipts are hidden. */
export function visibleStatus(status: ReceiptState, showRead: boolean): ReceiptState {
  return status === "read" && !showRead ? "delivered" : status;
}

/**
 * A device's effective state: its own, raised to `read` when its user's watermark covers
 * `seq` (a failed device stays failed).
 */
export function effectiveState(
  state: ReceiptState,
  seq: number,
  watermark: Watermark | undefined,
): ReceiptState {
  // A failed device never got it: the user's pointer (moved on another device) says nothing of it.
  if (watermark === undefined || watermark.upTo < seq || state === "failed") return state;
  const r = transition(state, "read");
  return r.error === undefined ? r.state : state;
}

/**
 * Each recipient user's status for one message: their devices' effective states merged by
 * {@link userStatus}. `recipients[i]` has state `states[i]`; the map keeps recipient order.
 */
export function recipientStatuses(
  recipients: readonly DeviceKey[],
  states: ArrayLike<ReceiptState>,
  seq: number,
  watermarks: ReadonlyMap<UserId, Watermark>,
): Map<UserId, ReceiptState> {
  const byUser = new Map<UserId, ReceiptState[]>();
  for (let i = 0; i < recipients.length; i++) {
    const { userId } = splitDeviceKey(recipients[i]!);
    const s = effectiveState(states[i]!, seq, watermarks.get(userId));
    const list = byUser.get(userId);
    if (list) list.push(s);
    else byUser.set(userId, [s]);
  }
  const out = new Map<UserId, ReceiptState>();
  for (const [u, list] of byUser) out.set(u, userStatus(list));
  return out;
}
