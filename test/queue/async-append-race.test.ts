import { describe, expect, it } from "vitest";
import { ManualClock, type MessageId } from "../../src/core/index.js";
import { DeliveryQueue, MemoryQueueStore, type QueueStore } from "../../src/queue/index.js";
import { asyncStore, dev, envelope } from "./helpers.js";

/**
 * A store whose append is applied at once but answers when `open()` is called (as Redis does
 * over the network): meanwhile a recover() can load the entry the append just stored.
 */
function slowAnswers(mem: MemoryQueueStore) {
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  const store: QueueStore = {
    ...asyncStore(mem),
    append: (m, r, max, until) => {
      const p = mem.append(m, r, max, until);
      return gate.then(() => p);
    },
  };
  return {
    store,
    hold() {
      gate = new Promise<void>((r) => {
        open = r;
      });
    },
    open: () => open(),
  };
}

const settle = async () => {
  for (let k = 0; k < 10; k++) await Promise.resolve();
};

describe("an async append whose answer comes after a recover() loaded its entry", () => {
  it.each([
    ["a few entries (found by a scan)", 0],
    ["more than the id index threshold", 40],
  ])("holds the entry once, and an ack ends it: %s", async (_, before) => {
    const clock = new ManualClock();
    const mem = new MemoryQueueStore();
    const slow = slowAnswers(mem);
    const log: string[] = [];
    const q = new DeliveryQueue({
      clock,
      store: slow.store,
      storeRetry: false,
      maxPerDevice: 1000,
      window: 100,
      retry: { retries: 2, minTimeout: 1000, factor: 2, randomize: false },
      ttlMs: 600_000,
      transmit: (_d, e, a) => log.push(`send ${e.id} #${a}`),
      onFailed: (e, _d, reason) => log.push(`failed ${e.id} ${reason}`),
    });
    const bob = dev("phone");
    for (let i = 1; i <= before; i++) await q.enqueue(envelope(i), [bob], { online: () => false });
    slow.hold();
    const enq = q.enqueue(envelope(99), [bob], { online: () => true });
    await Promise.resolve();
    await q.recover({ online: () => true }); // loads m99 from the store
    slow.open();
    await enq;
    expect(q.pending(bob)).toBe(before + 1);
    const ids = Array.from({ length: before }, (_, i) => `m${i + 1}` as MessageId);
    await q.ack(bob, [...ids, "m99" as MessageId]);
    expect(q.pending(bob)).toBe(0);
    for (let i = 0; i < 10; i++) {
      clock.advance(10_000);
      await settle();
    }
    expect(log.filter((l) => l.startsWith("failed"))).toEqual([]);
    q.close();
  });
});
