/**
 * Receipts: the sent / delivered / read state machine (pure), derived user and group
 * statuses, the {@link ReceiptTracker} the router drives, and the {@link ReceiptStore} port.
 */
export { MemoryReceiptStore } from "./memory-receipt-store.js";
export type {
  ReceiptMode,
  ReceiptRecord,
  ReceiptStore,
  ReceiptStoreSize,
  TrackedMessage,
  WatermarkAdvance,
} from "./receipt-store.js";
export {
  type AckResult,
  type DeviceInfo,
  type DroppedReceipt,
  type FailedResult,
  type IgnoredReason,
  type MemberInfo,
  type MessageInfo,
  type ReadReceiptsSetting,
  type ReceiptNotice,
  ReceiptTracker,
  type ReceiptTrackerEvents,
  type ReceiptTrackerOptions,
  type ReceiptTrackerSize,
  type RecipientDevice,
  type TrackOptions,
  type WatermarkResult,
} from "./receipt-tracker.js";
export {
  isReceiptState,
  RECEIPT_STATES,
  type ReceiptEvent,
  type ReceiptState,
  receiptRank,
  type TransitionResult,
  transition,
} from "./state.js";
export {
  effectiveState,
  groupStatus,
  recipientStatuses,
  userStatus,
  visibleStatus,
  type Watermark,
} from "./status.js";
