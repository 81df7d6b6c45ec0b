import {
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  messageId,
  type Priority,
  userId,
} from "../../src/core/index.js";
import type { QueueStore } from "../../src/queue/index.js";

/** A test envelope `m<n>` from alice, client id `c<n>`. */
export function envelope(
  n: number | string,
  priority: Priority = "normal",
  from = "alice",
): Envelope {
  return {
    id: messageId(`m${n}`),
    clientId: clientMessageId(`c${n}`),
    from: userId(from),
    fromDevice: deviceId("a1"),
    to: { user: userId("bob") },
    conversation: conversationId(`dm:${from}:bob`),
    seq: typeof n === "number" ? n : 1,
    ts: 0,
    text: `hello ${n}`,
    priority,
  };
}

/** `bob/<name>`. */
export const dev = (name: string, user = "bob"): DeviceKey =>
  deviceKey(userId(user), deviceId(name));

/** `store` behind its async {@link QueueStore} methods only, as a store doing I/O (Redis) offers. */
export function asyncStore(store: QueueStore): QueueStore {
  return {
    append: (message, recipients, max, dedupeUntil) =>
      store.append(message, recipients, max, dedupeUntil),
    list: (device) => store.list(device),
    count: (device) => store.count(device),
    devices: () => store.devices(),
    remove: (device, ids) => store.remove(device, ids),
    putSent: (sender, clientId, record, expiresAt, now) =>
      store.putSent(sender, clientId, record, expiresAt, now),
    getSent: (sender, clientId, now) => store.getSent(sender, clientId, now),
  };
}
