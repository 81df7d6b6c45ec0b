import fc from "fast-check";
import {
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  type ManualClock,
  messageId,
  type Priority,
  userId,
} from "../../src/core/index.js";
import type { DeliveryQueue, LoadSignal, QueueStore } from "../../src/queue/index.js";

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

/** Operations on a queue's world that both property tests drive (besides enqueue and ack). */
export type WorldOp =
  | { kind: "connect"; device: number }
  | { kind: "disconnect"; device: number }
  | { kind: "advance"; ms: number }
  | { kind: "load"; to: boolean | undefined };

/**
 * Weighted arbitraries of {@link WorldOp} over devices `0..devices-1`, for `fc.oneof`; the
 * weights default to connect 2, disconnect 2, advance 3, load 1.
 */
export function worldOpsOver(
  devices: number,
  weights: Partial<Record<WorldOp["kind"], number>> = {},
): fc.WeightedArbitrary<WorldOp>[] {
  const device = fc.integer({ min: 0, max: devices - 1 });
  return [
    {
      weight: weights.connect ?? 2,
      arbitrary: fc.record({ kind: fc.constant("connect" as const), device }),
    },
    {
      weight: weights.disconnect ?? 2,
      arbitrary: fc.record({ kind: fc.constant("disconnect" as const), device }),
    },
    {
      weight: weights.advance ?? 3,
      arbitrary: fc.record({
        kind: fc.constant("advance" as const),
        ms: fc.constantFrom(0, 1, 500, 1000, 2999, 7000, 60_000),
      }),
    },
    {
      weight: weights.load ?? 1,
      arbitrary: fc.record({
        kind: fc.constant("load" as const),
        to: fc.constantFrom(true, false, undefined),
      }),
    },
  ];
}

/** {@link worldOpsOver} devices 0..2. */
export const worldOps: fc.WeightedArbitrary<WorldOp>[] = worldOpsOver(3);

/** What a {@link WorldOp} acts on in one world. */
export interface OpWorld {
  readonly q: DeliveryQueue;
  readonly clock: ManualClock;
  readonly load: LoadSignal;
}

/** Applies `op` to every world alike; `connected` follows the connects and disconnects. */
export function applyWorldOp(
  op: WorldOp,
  devices: readonly DeviceKey[],
  connected: Set<DeviceKey>,
  worlds: readonly OpWorld[],
): void {
  switch (op.kind) {
    case "connect":
      connected.add(devices[op.device]!);
      for (const w of worlds) w.q.deviceConnected(devices[op.device]!);
      break;
    case "disconnect":
      connected.delete(devices[op.device]!);
      for (const w of worlds) w.q.deviceDisconnected(devices[op.device]!);
      break;
    case "advance":
      for (const w of worlds) w.clock.advance(op.ms);
      break;
    case "load":
      for (const w of worlds) w.load.setDegraded(op.to);
      break;
  }
}
