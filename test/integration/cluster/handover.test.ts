/**
 * The two DeliveryQueue additions the cluster node relies on, over one shared store (as
 * with Redis): `release(device)` lets go of a device without touching the store, and
 * `recover({ devices })` loads just those devices, e.g. on the node the device moved to.
 */
import { describe, expect, it } from "vitest";
import {
  type ClientMessageId,
  type ConversationId,
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type Envelope,
  ManualClock,
  type MessageId,
  type UserId,
} from "../../../src/core/index.js";
import { DeliveryQueue, MemoryQueueStore } from "../../../src/queue/index.js";

const bob = deviceKey("bob" as UserId, "d1" as DeviceId);
const carol = deviceKey("carol" as UserId, "d1" as DeviceId);

function env(i: number): Envelope {
  return {
    id: `m${i}` as MessageId,
    clientId: `c${i}` as ClientMessageId,
    from: "alice" as UserId,
    fromDevice: "d1" as DeviceId,
    to: { user: "bob" as UserId },
    conversation: "dm:alice:bob" as ConversationId,
    seq: i,
    ts: 0,
    text: `t${i}`,
    priority: "high",
  };
}

function node(store: MemoryQueueStore, clock: ManualClock) {
  const sent: [DeviceKey, string][] = [];
  const failed: string[] = [];
  const q = new DeliveryQueue({
    store,
    clock,
    transmit: (d, e) => sent.push([d, e.id]),
    onFailed: (e) => failed.push(e.id),
    retry: { retries: 2, minTimeout: 100, factor: 1, maxTimeout: 100 },
    storeRetry: false,
  });
  return { q, sent, failed };
}

describe("DeliveryQueue hand-over between nodes", () => {
  it("release forgets a device here but keeps its entries in the store; recover({ devices }) takes it over", async () => {
    const clock = new ManualClock();
    const store = new MemoryQueueStore();
    const a = node(store, clock);
    const b = node(store, clock);
    a.q.deviceConnected(bob);
    for (let i = 1; i <= 3; i++) await a.q.enqueue(env(i), [bob, carol]);
    expect(a.sent.filter(([d]) => d === bob).map(([, id]) => id)).toEqual(["m1", "m2", "m3"]);

    // bob moves to node B: A lets go, B loads only bob (not carol) and sends in order.
    expect(a.q.release(bob)).toBe(3);
    expect(a.q.pending(bob)).toBe(0);
    expect(a.q.pending(carol)).toBe(3);
    expect(await store.count(bob)).toBe(3);
    expect(await b.q.recover({ devices: [bob] })).toBe(3);
    expect(b.q.pending(carol)).toBe(0);
    b.q.deviceConnected(bob);
    expect(b.sent.map(([, id]) => id)).toEqual(["m1", "m2", "m3"]);

    // A released bob: no retries or failures from A; B redelivers on bob's next connection
    // (it sends nothing twice over one connection).
    clock.advance(150);
    expect(a.sent.filter(([d]) => d === bob)).toHaveLength(3);
    expect(b.sent.length).toBe(3);
    b.q.deviceDisconnected(bob);
    b.q.deviceConnected(bob);
    expect(b.sent.length).toBe(6); // one redelivery each
    expect(a.failed).toEqual([]);
    await b.q.ack(bob, ["m1", "m2"] as MessageId[]);
    expect(await store.count(bob)).toBe(1);
    // A second recover adds nothing already held.
    expect(await b.q.recover({ devices: [bob] })).toBe(0);
    expect(a.q.release(bob)).toBe(0);
    a.q.close();
    b.q.close();
  });

  it("entries recovered per device still expire on their TTL", async () => {
    const clock = new ManualClock();
    const store = new MemoryQueueStore();
    const a = new DeliveryQueue({ store, clock, transmit: () => {}, ttlMs: 1_000 });
    await a.enqueue(env(1), [bob]);
    a.release(bob);
    const failed: string[] = [];
    const b = new DeliveryQueue({
      store,
      clock,
      transmit: () => {},
      ttlMs: 1_000,
      onFailed: (e, _d, reason) => failed.push(`${e.id}:${reason}`),
    });
    await b.recover({ devices: [bob] });
    clock.advance(1_001);
    expect(failed).toEqual(["m1:ttl_expired"]);
    a.close();
    b.close();
  });
});
