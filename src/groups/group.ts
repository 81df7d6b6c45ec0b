import type { GroupId, UserId } from "../core/ids.js";
import type { SystemEvent } from "../core/types.js";

export type { GroupReceiptPolicy } from "../core/types.js";

import type { GroupReceiptPolicy } from "../core/types.js";

/** Every {@link GroupReceiptPolicy}, for validation. */
export const GROUP_RECEIPT_POLICIES = ["none", "aggregate", "per-member"] as const;

/** A group as stored: plain JSON data, so it crosses Redis and the NodeBus unchanged. */
export interface GroupRecord {
  readonly id: GroupId;
  readonly name: string;
  readonly createdBy: UserId;
  /** When it was created (Clock time). */
  readonly createdAt: number;
  /** Members in the order they joined. */
  readonly members: readonly UserId[];
  /** The admins: always members; they may add, remove and promote. */
  readonly admins: readonly UserId[];
  readonly receipts: GroupReceiptPolicy;
}

/** What {@link GroupService} emits as `system`: a membership change to tell in the group's conversation. */
export interface GroupSystemEvent {
  readonly groupId: GroupId;
  readonly event: SystemEvent;
}

/** The largest group by default: WhatsApp's limit, which keeps fan-out real-time. */
export const DEFAULT_GROUP_MAX_SIZE = 1024;
