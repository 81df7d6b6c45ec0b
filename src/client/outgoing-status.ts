/**
 * Where a message this client sent stands. `pending`: not yet accepted by the server (it
 * will be resent after a reconnect); `sent` ✓; `delivered` ✓✓; `read` blue ✓✓; `failed`:
 * the server refused it or gave up delivering it.
 */
export type OutgoingStatus = "pending" | "sent" | "delivered" | "read" | "failed";

const RANK: Readonly<Record<OutgoingStatus, number>> = {
  pending: 0,
  sent: 1,
  delivered: 2,
  read: 3,
  failed: -1,
};

/**
 * The status after an event: monotonic and idempotent. Duplicate and late receipts never move
 * a status backwards; `read` implies `delivered`; `failed` only applies to a message nobody
 * has received yet (a later delivery wins over a failure on another device), and a failed
 * message only leaves `failed` when a receipt shows it did arrive.
 */
export function advanceStatus(current: OutgoingStatus, event: OutgoingStatus): OutgoingStatus {
  if (event === "pending") return current;
  if (event === "failed") return RANK[current] >= RANK.delivered ? current : "failed";
  if (current === "failed") return RANK[event] >= RANK.delivered ? event : current;
  return RANK[event] > RANK[current] ? event : current;
}
