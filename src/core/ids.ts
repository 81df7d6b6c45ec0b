/**
 * Branded identifier types. A brand is a compile-time tag only: at run time every id is a
 * plain string, so ids cross JSON, Redis and the NodeBus unchanged.
 */
declare const brand: unique symbol;

/** A string tagged with a compile-time brand `B`. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A user: the person behind one or more devices. */
export type UserId = Brand<string, "UserId">;
/** One device (phone, laptop, browser tab) of a user. */
export type DeviceId = Brand<string, "DeviceId">;
/** A server-assigned message id, unique across the cluster. */
export type MessageId = Brand<string, "MessageId">;
/** The client's own id for a message it sends; the idempotency key with the sender. */
export type ClientMessageId = Brand<string, "ClientMessageId">;
/** A conversation: the pair of users of a 1:1 chat, or a group. */
export type ConversationId = Brand<string, "ConversationId">;
/** A relaykit node (one process holding gateways). */
export type NodeId = Brand<string, "NodeId">;
/** One live connection of one device to one node. */
export type SessionId = Brand<string, "SessionId">;
/** A group chat. */
export type GroupId = Brand<string, "GroupId">;

/** Tags a string as a {@link UserId}. */
export const userId = (s: string): UserId => s as UserId;
/** Tags a string as a {@link DeviceId}. */
export const deviceId = (s: string): DeviceId => s as DeviceId;
/** Tags a string as a {@link MessageId}. */
export const messageId = (s: string): MessageId => s as MessageId;
/** Tags a string as a {@link ClientMessageId}. */
export const clientMessageId = (s: string): ClientMessageId => s as ClientMessageId;
/** Tags a string as a {@link NodeId}. */
export const nodeId = (s: string): NodeId => s as NodeId;
/** Tags a string as a {@link SessionId}. */
export const sessionId = (s: string): SessionId => s as SessionId;
/** Tags a string as a {@link GroupId}. */
export const groupId = (s: string): GroupId => s as GroupId;
/** Tags a string as a {@link ConversationId}. */
export const conversationId = (s: string): ConversationId => s as ConversationId;

/**
 * The conversation of a 1:1 chat: the same id whichever side computes it.
 * @example directConversation(userId("bob"), userId("alice")) // "dm:alice:bob"
 */
export function directConversation(a: UserId, b: UserId): ConversationId {
  return (a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`) as ConversationId;
}

/** The conversation of a group chat. */
export function groupConversation(group: GroupId): ConversationId {
  return `g:${group}` as ConversationId;
}

/** The key of one recipient device, used by per-device state (queue, receipts). */
export type DeviceKey = Brand<string, "DeviceKey">;

/** Joins a user and device into a {@link DeviceKey}. `/` cannot occur in protocol ids. */
export function deviceKey(user: UserId, device: DeviceId): DeviceKey {
  return `${user}/${device}` as DeviceKey;
}

/** Splits a {@link DeviceKey} back into its user and device. */
export function splitDeviceKey(key: DeviceKey): { userId: UserId; deviceId: DeviceId } {
  const i = key.indexOf("/");
  return { userId: key.slice(0, i) as UserId, deviceId: key.slice(i + 1) as DeviceId };
}
