import { describe, expect, it } from "vitest";
import {
  DeliveryQueue,
  type DeviceId,
  deviceKey,
  type Envelope,
  ManualClock,
  MemoryQueueStore,
  type MessageId,
  type UserId,
} from "../../src/index.js";

const bob = deviceKey("bob" as UserId, "phone" as DeviceId);
const envelope = (n: number): Envelope =>
  ({
    id: `m${n}`,
    clientId: `c${n}`,
    from: "alice",
    fromDevice: "d1",
    to: { user: "bob" },
    conversation: "dm:alice:bob",
    seq: n,
    ts: 0,
    text: `hi ${n}`,
    priority: "high",
  }) as unknown as Envelope;

function twoNodes() {
  const clock = new ManualClock();
  const store = new MemoryQueueStore();
  const log: string[] = [];
  const make = (name: string) =>
    new DeliveryQueue({
      clock,
      store,
      sharedStore: true,
      retry: { retries: 3, minTimeout: 1000, factor: 2, randomize: false },
      ttlMs: 60_000,
      transmit: (_d, e, attempt) => log.push(`${name} sends ${e.id} #${attempt}`),
      onFailed: (e, _d, reason) => log.push(`${name} fails ${e.id} ${reason}`),
    });
  return { clock, store, log, a: make("A"), b: make("B") };
}

const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe("DeliveryQueue on a store shared by several nodes", () => {
  it("an ack taken by another node stops this node's retries and never becomes `failed`", async () => {
    const { clock, log, a, b } = twoNodes();
    await a.enqueue(envelope(1), [bob], { online: () => true });
    await b.ack(bob, ["m1" as MessageId]); // bob's ack reached node B
    for (let i = 0; i < 6; i++) {
      clock.advance(10_000);
      await settle();
    }
    expect(log).toEqual(["A sends m1 #1"]);
    expect(a.pending(bob)).toBe(0);
  });

  it("a message acked elsewhere while the device was offline does not expire into `failed`", async () => {
    const { clock, log, a, b } = twoNodes();
    await a.enqueue(envelope(1), [bob], { online: () => false });
    await b.ack(bob, ["m1" as MessageId]);
    clock.advance(61_000);
    await settle();
    expect(log).toEqual([]);
  });

  it("a device connecting to another node gets the entries queued for it elsewhere, in order", async () => {
    const { log, a, b } = twoNodes();
    await a.enqueue(envelope(1), [bob], { online: () => false });
    await a.enqueue(envelope(2), [bob], { online: () => false });
    await b.deviceConnected(bob);
    expect(log).toEqual(["B sends m1 #1", "B sends m2 #1"]);
  });

  it("entries no queue holds in memory expire through expireStored, reported by one node", async () => {
    const { clock, log, a, b } = twoNodes();
    await a.enqueue(envelope(1), [bob], { online: () => false });
    a.release(bob); // a let go of the device (it was expected elsewhere, and never came)
    clock.advance(59_000);
    expect(await b.expireStored()).toBe(0); // not expired yet
    clock.advance(2_000);
    const [byB, byA] = await Promise.all([b.expireStored(), a.expireStored()]);
    expect(byA + byB).toBe(1);
    expect(log.filter((l) => l.includes("fails"))).toHaveLength(1);
    expect(log.at(-1)).toMatch(/fails m1 ttl_expired$/);
  });

  it("a message nobody acked still fails exactly once", async () => {
    const { clock, log, a } = twoNodes();
    await a.enqueue(envelope(1), [bob], { online: () => false });
    clock.advance(61_000);
    await settle();
    expect(log).toEqual(["A fails m1 ttl_expired"]);
  });
});
