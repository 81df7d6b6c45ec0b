import type {
  ClientMessageId,
  ConversationId,
  DeviceId,
  DeviceKey,
  GroupId,
  MessageId,
  UserId,
} from "../core/index.js";
import type { MaybePromise } from "../core/maybe.js";
import type { ServerReceiptFrame } from "../protocol/schemas.js";
import type { ReceiptState } from "./state.js";
import type { Watermark } from "./status.js";

/**
 * How a message's receipts reach its sender: `direct` for 1:1 messages, and for groups
 * `none` (no delivered/read ticks), `aggregate` (one tick when every member reached a state)
 * or `per-member` (each member's ticks, and `info`).
 */
export type ReceiptMode = "direct" | "none" | "aggregate" | "per-member";

/** What the tracker remembers about a message, frozen when the router accepted it. */
export interface TrackedMessage {
  readonly id: MessageId;
  readonly clientId: ClientMessageId;
  readonly from: UserId;
  readonly fromDevice: DeviceId;
  readonly conversation: ConversationId;
  /** Position in the conversation's order (from the router's sequence, never a timestamp). */
  readonly seq: number;
  /** The group, for a group message. */
  readonly group?: GroupId;
  readonly mode: ReceiptMode;
  /** When the tracker forgets it even if not final (Clock time). */
  readonly expiresAt: number;
  /** The recipient devices frozen at send time (never the sender's own devices). */
  readonly recipients: readonly DeviceKey[];
}

/**
 * A tracked message with each recipient device's progress, aligned with
 * `message.recipients`. Times are Clock times, `NaN` when not reached yet.
 * @remarks An implementation may return a live view: read it at once, do not keep it.
 */
export interface ReceiptRecord {
  readonly message: TrackedMessage;
  readonly states: ArrayLike<ReceiptState>;
  /** When each device first reached `delivered` (or `read`), `NaN` before. */
  readonly deliveredAt: ArrayLike<number>;
  /** When each device first reached `read`, `NaN` before. */
  readonly readAt: ArrayLike<number>;
}

/** Sizes of what a {@link ReceiptStore} holds, for memory tests and metrics. */
export interface ReceiptStoreSize {
  /** Tracked messages. */
  readonly messages: number;
  /** Tracked (message, recipient device) entries. */
  readonly entries: number;
  /** Read pointers, one per (reader, conversation). */
  readonly watermarks: number;
}

/** The outcome of {@link ReceiptStore.advanceWatermark}. */
export interface WatermarkAdvance {
  /** False when `upTo` was not above the current pointer (nothing written). */
  readonly advanced: boolean;
  /** The pointer before the call, if there was one. */
  readonly previous: Watermark | undefined;
}

/**
 * Where receipt state lives: tracked messages with per-device states, and read watermarks.
 * The in-memory default is {@link MemoryReceiptStore}; a Redis one keeps a hash per message,
 * a sorted set per conversation (by seq) and one hash of pointers per conversation.
 * @remarks It does not merge states: the tracker runs the state machine and writes the
 * result (`setState` is a plain write), and it does not arbitrate concurrent trackers
 * writing the same device of the same message. It sends nothing and keeps no timers:
 * expiry happens when the tracker calls `expire`. A method may answer at once (in memory) or
 * with a promise; the tracker runs without a promise per step when it answers at once.
 */
export interface ReceiptStore {
  /**
   * Starts tracking a message, every recipient device at `initial`. Returns false (and
   * changes nothing) when the id is already tracked.
   */
  track(message: TrackedMessage, initial: ReceiptState): MaybePromise<boolean>;
  /** A tracked message with its per-device progress, or `undefined`. */
  load(id: MessageId): MaybePromise<ReceiptRecord | undefined>;
  /**
   * Writes recipient `index`'s state (one write), stamping the first time it reached
   * `delivered` and `read` (`read` also stamps `delivered` when unset). Unknown ids are ignored.
   */
  setState(id: MessageId, index: number, state: ReceiptState, at: number): MaybePromise<void>;
  /**
   * Moves the (reader, conversation) pointer to `upTo` if that is higher (one write, however
   * many messages it covers); `expiresAt` is when the pointer may be forgotten.
   */
  advanceWatermark(
    reader: UserId,
    conversation: ConversationId,
    upTo: number,
    at: number,
    expiresAt: number,
  ): MaybePromise<WatermarkAdvance>;
  /** Every reader's pointer in a conversation. */
  watermarks(conversation: ConversationId): MaybePromise<ReadonlyMap<UserId, Watermark>>;
  /** Ids of tracked messages of a conversation with `after < seq <= upTo`, in seq order. */
  inRange(
    conversation: ConversationId,
    after: number,
    upTo: number,
  ): MaybePromise<readonly MessageId[]>;
  /** Forgets messages; unknown ids are ignored. Returns how many were tracked. */
  release(ids: readonly MessageId[]): MaybePromise<number>;
  /** Forgets messages and pointers whose `expiresAt <= now`; returns the expired message ids. */
  expire(now: number): MaybePromise<readonly MessageId[]>;
  /** What it holds. */
  size(): MaybePromise<ReceiptStoreSize>;
  /**
   * Keeps a receipt frame for a user none of whose devices is connected, until `expiresAt`,
   * so a sender who was offline still gets its ticks (and above all `failed`) on return.
   * At most `max` frames are kept per user; past it the oldest go.
   */
  hold(user: UserId, frame: ServerReceiptFrame, expiresAt: number, max: number): MaybePromise<void>;
  /** Takes (removes and returns) a user's held frames that have not expired, oldest first. */
  takeHeld(user: UserId, now: number): MaybePromise<readonly ServerReceiptFrame[]>;
}
