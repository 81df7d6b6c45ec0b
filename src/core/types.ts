import type {
  ClientMessageId,
  ConversationId,
  DeviceId,
  GroupId,
  MessageId,
  NodeId,
  SessionId,
  UserId,
} from "./ids.js";

/** One live connection of one device to one node. */
export interface Session {
  readonly sessionId: SessionId;
  readonly userId: UserId;
  readonly deviceId: DeviceId;
  readonly nodeId: NodeId;
  /** When the connection was authenticated (Clock time). */
  readonly connectedAt: number;
}

/** Delivery priority lane. `high` goes first under load; `low` is deferred (never dropped). */
export type Priority = "high" | "normal" | "low";

/** The recipient of a message: one user, or a group. */
export type Target = { readonly user: UserId } | { readonly group: GroupId };

/** A media attachment reference. The bytes live in a BlobStore; only this travels. */
export interface Attachment {
  readonly kind: "image" | "video" | "audio" | "document" | "sticker";
  readonly mime: string;
  /** Size of the blob in bytes. */
  readonly size: number;
  /** Hex SHA-256 of the blob, so the receiver can verify what it downloads. */
  readonly sha256: string;
  /** Where the blob lives in the BlobStore. */
  readonly blobId: string;
  readonly name?: string | undefined;
}

/**
 * A message the router has accepted: what is stored, queued, and delivered. Everything a
 * recipient sees comes from here; `from` and `fromDevice` are the authenticated identity.
 */
export interface Envelope {
  readonly id: MessageId;
  readonly clientId: ClientMessageId;
  readonly from: UserId;
  readonly fromDevice: DeviceId;
  readonly to: Target;
  readonly conversation: ConversationId;
  /** Position in the conversation's total order, from 1. */
  readonly seq: number;
  /** When the router accepted it (Clock time). */
  readonly ts: number;
  readonly text: string;
  readonly attachments?: readonly Attachment[] | undefined;
  readonly priority: Priority;
  /** Set on system messages (group membership changes). */
  readonly system?: SystemEvent | undefined;
}

/** A system message's payload: a change in a group, told in its conversation. */
export interface SystemEvent {
  readonly event: "group.created" | "member.added" | "member.removed" | "member.left";
  readonly actor: UserId;
  readonly members: readonly UserId[];
}

/**
 * Who hears about group receipts: `none` (the seed's default: they are expensive),
 * `aggregate` (one tick when all members reached a state) or `per-member` (message info).
 */
export type GroupReceiptPolicy = "none" | "aggregate" | "per-member";
