import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type MessageId, messageId, userId } from "../../src/core/index.js";
import {
  isSyncQueueStore,
  MemoryQueueStore,
  type QueuedMessage,
  sentRecordOf,
} from "../../src/queue/index.js";
import { queueStoreConformance } from "../../src/testing/conformance/queue-store.js";
import { asyncStore, dev, envelope } from "./helpers.js";

describe("MemoryQueueStore", () => {
  for (const c of queueStoreConformance({ create: async () => new MemoryQueueStore() })) {
    it(c.name, c.run);
  }
});

const msg = (n: number): QueuedMessage => ({
  envelope: envelope(n),
  enqueuedAt: 0,
  expiresAt: 1e9,
});
const ids = (list: readonly QueuedMessage[]) => list.map((m) => m.envelope.id);
const mid = (n: number): MessageId => messageId(`m${n}`);

describe("MemoryQueueStore: a device with many entries", () => {
  it("keeps order, idempotency, the cap and removal by id as it grows past an array and drains back", async () => {
    const s = new MemoryQueueStore();
    const phone = dev("phone");
    for (let n = 1; n <= 40; n++)
      expect(s.appendSync(msg(n), [phone], 40)).toEqual({ ok: true, added: 1 });
    expect(s.appendSync(msg(7), [phone], 40)).toEqual({ ok: true, added: 0 });
    expect(s.appendSync(msg(41), [phone], 40)).toEqual({ ok: false, full: [phone] });
    expect(await s.count(phone)).toBe(40);
    expect(s.removeSync(phone, [mid(40), mid(3), mid(99), mid(3)])).toBe(2);
    const rest = [...Array(39).keys()].map((i) => mid(i + 1)).filter((id) => id !== mid(3));
    expect(ids(await s.list(phone))).toEqual(rest);
    expect(s.removeSync(phone, [...rest].reverse())).toBe(38);
    expect(await s.count(phone)).toBe(0);
    expect(await s.devices()).toEqual([]);
    // Small again: the same behaviour.
    for (const n of [50, 51, 52]) s.appendSync(msg(n), [phone], 10);
    expect(s.appendSync(msg(51), [phone], 1)).toEqual({ ok: true, added: 0 });
    expect(s.removeSync(phone, [mid(51)])).toBe(1);
    expect(ids(await s.list(phone))).toEqual([mid(50), mid(52)]);
    expect(s.size).toBe(2);
  });

  it("appends to several devices at once, all or nothing", async () => {
    const s = new MemoryQueueStore();
    const [a, b] = [dev("a"), dev("b")];
    for (let n = 1; n <= 20; n++) s.appendSync(msg(n), [a], 100);
    expect(s.appendSync(msg(21), [a, b], 20)).toEqual({ ok: false, full: [a] });
    expect(await s.count(b)).toBe(0);
    expect(s.appendSync(msg(21), [a, b], 21)).toEqual({ ok: true, added: 2 });
    expect(s.appendSync(msg(21), [a, b], 21)).toEqual({ ok: true, added: 0 });
    expect(ids(await s.list(b))).toEqual([mid(21)]);
    expect((await s.list(a)).length).toBe(21);
  });
});

describe("MemoryQueueStore: synchronous methods", () => {
  it("is a SyncQueueStore; a store with only the async methods is not", () => {
    const s = new MemoryQueueStore();
    expect(isSyncQueueStore(s)).toBe(true);
    expect(isSyncQueueStore(asyncStore(s))).toBe(false);
  });

  it("getSentSync and putSentSync answer as getSent and putSent do", async () => {
    const s = new MemoryQueueStore();
    const alice = userId("alice");
    const { clientId } = envelope(1);
    const first = sentRecordOf(envelope(1));
    expect(s.getSentSync(alice, clientId, 0)).toBeUndefined();
    expect(s.putSentSync(alice, clientId, first, 100, 0)).toBe(first);
    expect(s.putSentSync(alice, clientId, sentRecordOf(envelope(2)), 100, 50)).toBe(first);
    expect(s.getSentSync(alice, clientId, 99)).toBe(first);
    expect(await s.getSent(alice, clientId, 99)).toBe(first);
    expect(s.getSentSync(alice, clientId, 100)).toBeUndefined();
    expect(await s.getSent(alice, clientId, 100)).toBeUndefined();
  });
});

describe("MemoryQueueStore against a model", () => {
  it("appends (devices listed twice, messages appended again), removals and caps match a plain list per device", async () => {
    const devices = ["a", "b", "c", "d"].map((d) => dev(d));
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("append" as const),
        n: fc.integer({ min: 1, max: 30 }),
        to: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 }),
        max: fc.integer({ min: 1, max: 24 }),
      }),
      fc.record({
        kind: fc.constant("remove" as const),
        d: fc.integer({ min: 0, max: 3 }),
        ns: fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 5 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 120 }), async (ops) => {
        const s = new MemoryQueueStore();
        const model = new Map<string, number[]>(devices.map((d) => [d, []]));
        for (const o of ops) {
          if (o.kind === "append") {
            const to = o.to.map((i) => devices[i]!);
            const distinct = [...new Set(to)];
            const fresh = distinct.filter((d) => !model.get(d)!.includes(o.n));
            const full = to.filter(
              (d) => !model.get(d)!.includes(o.n) && model.get(d)!.length + 1 > o.max,
            );
            // `fresh` is a promise that no device holds it: given whenever that is true.
            const minted = [...model.values()].every((list) => !list.includes(o.n));
            const r = s.appendSync(msg(o.n), to, o.max, undefined, minted);
            if (full.length > 0) {
              expect(r).toEqual({ ok: false, full });
            } else {
              expect(r).toEqual({ ok: true, added: fresh.length });
              for (const d of fresh) model.get(d)!.push(o.n);
            }
          } else {
            const d = devices[o.d]!;
            const list = model.get(d)!;
            let removed = 0;
            for (const n of o.ns) {
              const i = list.indexOf(n);
              if (i >= 0) {
                list.splice(i, 1);
                removed++;
              }
            }
            expect(s.removeSync(d, o.ns.map(mid))).toBe(removed);
          }
          for (const d of devices) {
            expect(ids(await s.list(d))).toEqual(model.get(d)!.map(mid));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
