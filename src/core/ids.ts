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
 * The conversation of a 1:1 chat: the same id whichever side computes it, and a different
 * one for every other pair. Users are ordered; `dm:<a>:<b>` when neither id holds a `:`,
 * otherwise `dmx:<length of a>:<a>:<b>` (user ids may contain `:`, so `x`+`y:z` and `x:y`+`z`
 * must not share `dm:x:y:z`). {@link directPeers} reads it back.
 * @example directConversation(userId("bob"), userId("alice")) // "dm:alice:bob"
 * @example directConversation(userId("x"), userId("y:z")) // "dmx:1:x:y:z"
 */
export function directConversation(a: UserId, b: UserId): ConversationId {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  if (!lo.includes(":") && !hi.includes(":")) return `dm:${lo}:${hi}` as ConversationId;
  return `dmx:${lo.length}:${lo}:${hi}` as ConversationId;
}

/**
 * The two users of a 1:1 conversation id made by {@link directConversation} (ordered), or
 * `undefined` for any other string (a group's, or one no pair of users produces).
 */
export function directPeers(conversation: string): readonly [UserId, UserId] | undefined {
  let a: string;
  let b: string;
  if (conversation.startsWith("dm:")) {
    const rest = conversation.slice(3);
    const mid = rest.indexOf(":");
    if (mid < 0) return undefined;
    a = rest.slice(0, mid);
    b = rest.slice(mid + 1);
  } else if (conversation.startsWith("dmx:")) {
    const rest = conversation.slice(4);
    const colon = rest.indexOf(":");
    const digits = rest.slice(0, colon);
    if (colon < 1 || !/^[0-9]+$/.test(digits)) return undefined;
    const n = Number(digits);
    const start = colon + 1;
    if (rest[start + n] !== ":") return undefined;
    a = rest.slice(start, start + n);
    b = rest.slice(start + n + 1);
  } else return undefined;
  // Only the canonical form: one id per pair.
  if (a.length === 0 || b.length === 0) return undefined;
  if (directConversation(a as UserId, b as UserId) !== conversation) return undefined;
  return [a as UserId, b as UserId];
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
