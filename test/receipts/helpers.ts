import {
  type ConversationId,
  clientMessageId,
  type DeviceId,
  deviceId,
  directConversation,
  type Envelope,
  type GroupId,
  groupConversation,
  groupId,
  ManualClock,
  type MessageId,
  messageId,
  type UserId,
  userId,
} from "../../src/core/index.js";
import {
  type ReceiptNotice,
  ReceiptTracker,
  type ReceiptTrackerOptions,
  type RecipientDevice,
} from "../../src/receipts/index.js";

export const alice = userId("alice");
export const bob = userId("bob");
export const carol = userId("carol");
export const dave = userId("dave");
export const a1 = deviceId("a1");
export const a2 = deviceId("a2");
export const b1 = deviceId("b1");
export const b2 = deviceId("b2");
export const c1 = deviceId("c1");
export const d1 = deviceId("d1");
export const team: GroupId = groupId("team");
export const dm: ConversationId = directConversation(alice, bob);
export const teamConv: ConversationId = groupConversation(team);

export const dev = (u: UserId, d: DeviceId): RecipientDevice => ({ userId: u, deviceId: d });
export const ids = (...xs: string[]): MessageId[] => xs.map(messageId);

/** An envelope from alice (device a1) to bob, or to a group. */
export function envelope(
  id: string,
  seq: number,
  opts: {
    group?: GroupId;
    from?: UserId;
    fromDevice?: DeviceId;
    conversation?: ConversationId;
  } = {},
): Envelope {
  const from = opts.from ?? alice;
  return {
    id: messageId(id),
    clientId: clientMessageId(`c-${id}`),
    from,
    fromDevice: opts.fromDevice ?? a1,
    to: opts.group ? { group: opts.group } : { user: from === alice ? bob : alice },
    conversation: opts.conversation ?? (opts.group ? groupConversation(opts.group) : dm),
    seq,
    ts: 0,
    text: "hi",
    priority: "normal",
  };
}

/** A tracker under a manual clock that records what it tells the router. */
export function setup(opts: Omit<ReceiptTrackerOptions, "clock"> = {}) {
  const clock = new ManualClock(1000);
  const tracker = new ReceiptTracker({ clock, ...opts });
  const notices: ReceiptNotice[] = [];
  const released: { ids: readonly MessageId[]; reason: string }[] = [];
  const dropped: unknown[] = [];
  tracker.on("notify", (n) => notices.push(n));
  tracker.on("released", (ids, reason) => released.push({ ids, reason }));
  tracker.on("dropped", (d) => dropped.push(d));
  /** Notices since the last call. */
  const take = (): ReceiptNotice[] => notices.splice(0);
  return { clock, tracker, notices, released, dropped, take };
}
