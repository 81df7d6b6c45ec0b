import { describe, expect, it } from "vitest";
import { deviceKey, isRelayError, ManualClock, messageId } from "../../src/core/index.js";
import { MemoryReceiptStore, ReceiptTracker } from "../../src/receipts/index.js";
import { a1, a2, alice, b1, b2, bob, c1, carol, dev, dm, envelope, ids, setup } from "./helpers.js";

const bobDevices = [dev(bob, b1), dev(bob, b2)];

describe("ReceiptTracker 1:1, two devices each side", () => {
  it("delivered then read reach the sender once per user, with read sync to the reader", async () => {
    const { tracker, take, released, clock } = setup();
    // The router may pass the sender's other device too: it is left out.
    expect(await tracker.track(envelope("m1", 1), [...bobDevices, dev(alice, a2)])).toBe(true);
    expect((await tracker.size()).entries).toBe(2);

    clock.advance(5);
    const r = await tracker.ack(bob, b1, "delivered", ids("m1"));
    expect(r.applied).toEqual(["m1"]);
    expect(take()).toEqual([
      {
        toUser: alice,
        frame: { type: "receipt", status: "delivered", ids: ["m1"], by: bob, device: b1, ts: 1005 },
      },
    ]);

    // Bob's second device getting it changes nothing for alice.
    await tracker.ack(bob, b2, "delivered", ids("m1"));
    expect(take()).toEqual([]);

    clock.advance(5);
    await tracker.ack(bob, b2, "read", ids("m1"));
    expect(take()).toEqual([
      {
        toUser: alice,
        frame: { type: "receipt", status: "read", ids: ["m1"], by: bob, device: b2, ts: 1010 },
      },
      {
        toUser: bob,
        exceptDevice: b2,
        frame: { type: "receipt", status: "read", ids: ["m1"], by: bob, device: b2, ts: 1010 },
      },
    ]);
    // Read by its only recipient user: final, released.
    expect(released).toEqual([{ ids: ["m1"], reason: "final" }]);
    expect(await tracker.size()).toMatchObject({ messages: 0, entries: 0 });
  });

  it("read before delivered implies delivered; duplicates and late acks never go backwards", async () => {
    const { tracker, take } = setup();
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.track(envelope("m2", 2), bobDevices);
    await tracker.ack(bob, b1, "read", ids("m1"));
    const first = take();
    expect(first.map((n) => [n.toUser, n.frame.status])).toEqual([
      [alice, "read"],
      [bob, "read"],
    ]);
    // m1 is released (final); a late delivered for it is recognised and ignored.
    const late = await tracker.ack(bob, b2, "delivered", ids("m1"));
    expect(late.ignored).toEqual([{ id: "m1", reason: "final" }]);
    expect((await tracker.size()).buffered).toBe(0);
    await tracker.ack(bob, b1, "delivered", ids("m2"));
    await tracker.ack(bob, b1, "delivered", ids("m2"));
    await tracker.ack(bob, b2, "delivered", ids("m2"));
    expect(take().map((n) => n.frame.status)).toEqual(["delivered"]);
    const info = await tracker.info(messageId("m2"));
    expect(info?.members[0]?.status).toBe("delivered");
  });

  it("batches several ids into one frame per destination", async () => {
    const { tracker, take } = setup();
    for (let i = 1; i <= 3; i++) await tracker.track(envelope(`m${i}`, i), bobDevices);
    await tracker.ack(bob, b1, "delivered", ids("m1", "m2", "m3", "m2"));
    const n = take();
    expect(n).toHaveLength(1);
    expect(n[0]!.frame).toMatchObject({ status: "delivered", ids: ["m1", "m2", "m3"] });
  });

  it("ignores receipts for one's own messages and from non-recipients", async () => {
    const { tracker, take } = setup();
    await tracker.track(envelope("m1", 1), bobDevices);
    const own = await tracker.ack(alice, a2, "read", ids("m1"));
    expect(own.ignored).toEqual([{ id: "m1", reason: "own_message" }]);
    const stranger = await tracker.ack(carol, c1, "read", ids("m1"));
    expect(stranger.ignored).toEqual([{ id: "m1", reason: "not_recipient" }]);
    expect(take()).toEqual([]);
  });

  it("receipts never produce receipts: only sender and reader sync are told", async () => {
    const { tracker, take } = setup();
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.ack(bob, b1, "read", ids("m1"));
    for (const n of take()) expect([alice, bob]).toContain(n.toUser);
    // Acking the receipt itself (an unknown id) yields nothing but a buffer entry.
    const r = await tracker.ack(alice, a1, "read", ids("receipt-of-m1"));
    expect(r.buffered).toEqual(["receipt-of-m1"]);
    expect(take()).toEqual([]);
  });
});

describe("ReceiptTracker track options", () => {
  it("`distinct` keeps the recipients as given (own devices still left out); without it repeats count once", async () => {
    for (const distinct of [true, false]) {
      const { tracker } = setup();
      const given = [...bobDevices, dev(alice, a2), dev(carol, c1)];
      const list = distinct ? given : [...given, ...given];
      expect(await tracker.track(envelope("m1", 1), list, { distinct })).toBe(true);
      expect((await tracker.size()).entries).toBe(3);
      // Every recipient device acks: the message reaches its final state either way.
      for (const [u, d] of [
        [bob, b1],
        [bob, b2],
        [carol, c1],
      ] as const) {
        await tracker.ack(u, d, "read", ids("m1"));
      }
      expect(await tracker.size()).toMatchObject({ messages: 0, entries: 0 });
    }
  });
});

describe("ReceiptTracker watermarks", () => {
  it("one pointer per (reader, conversation), moving only forward, one store write", async () => {
    const store = new MemoryReceiptStore();
    let pointerWrites = 0;
    let stateWrites = 0;
    const advance = store.advanceWatermark.bind(store);
    const setState = store.setState.bind(store);
    store.advanceWatermark = (...args) => {
      pointerWrites++;
      return advance(...args);
    };
    store.setState = (...args) => {
      stateWrites++;
      return setState(...args);
    };
    const { tracker, take, released } = setup({ store, clampWatermarks: false });
    for (let i = 1; i <= 50; i++) await tracker.track(envelope(`m${i}`, i), bobDevices);
    // Bob's own reply in the same conversation.
    await tracker.track(envelope("r1", 51, { from: bob, fromDevice: b1 }), [dev(alice, a1)]);

    const w = await tracker.watermark(bob, b1, dm, 40);
    expect(w).toEqual({ advanced: true, upTo: 40 });
    expect(pointerWrites).toBe(1);
    expect(stateWrites).toBe(0);
    expect(take()).toEqual([
      {
        toUser: bob,
        exceptDevice: b1,
        frame: {
          type: "receipt",
          status: "read",
          conversation: dm,
          upTo: 40,
          by: bob,
          device: b1,
          ts: 1000,
        },
      },
      {
        toUser: alice,
        frame: {
          type: "receipt",
          status: "read",
          conversation: dm,
          upTo: 40,
          by: bob,
          device: b1,
          ts: 1000,
        },
      },
    ]);
    expect(released[0]?.ids).toHaveLength(40);

    // Older or equal watermarks are ignored, from any device.
    expect(await tracker.watermark(bob, b2, dm, 30)).toEqual({ advanced: false, upTo: 40 });
    expect(await tracker.watermark(bob, b2, dm, 40)).toEqual({ advanced: false, upTo: 40 });
    expect(take()).toEqual([]);

    // Covering bob's own message r1 does not tell alice about it.
    await tracker.watermark(bob, b2, dm, 60);
    const n = take();
    expect(n.map((x) => [x.toUser, x.exceptDevice])).toEqual([
      [bob, b2],
      [alice, undefined],
    ]);
    expect((await tracker.size()).watermarks).toBe(1);
    expect((await tracker.size()).messages).toBe(1); // r1, waiting for alice
  });

  it("a read by ids, then a watermark over it, does not tell the sender twice", async () => {
    const { tracker, take } = setup({ clampWatermarks: false });
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.track(envelope("m2", 2), bobDevices);
    await tracker.ack(bob, b1, "delivered", ids("m1", "m2"));
    await tracker.ack(bob, b1, "read", ids("m1"));
    take();
    await tracker.watermark(bob, b2, dm, 1);
    // Only read sync: m1 was already read.
    expect(take().map((n) => n.toUser)).toEqual([bob]);
  });

  it("a watermark that overtook its message applies when the message is tracked", async () => {
    const { tracker, take, released } = setup({ clampWatermarks: false });
    await tracker.watermark(bob, b1, dm, 5);
    take();
    await tracker.track(envelope("m3", 3), bobDevices);
    expect(take()).toEqual([
      { toUser: alice, frame: { type: "receipt", status: "read", ids: ["m3"], by: bob, ts: 1000 } },
    ]);
    expect(released.at(-1)?.ids).toEqual(["m3"]);
  });

  it("watermarks expire with retention (bounded pointers)", async () => {
    const { tracker, clock } = setup({
      retentionMs: 10_000,
      sweepIntervalMs: 1000,
      clampWatermarks: false,
    });
    await tracker.watermark(bob, b1, dm, 5);
    expect((await tracker.size()).watermarks).toBe(1);
    clock.advance(11_000);
    await tracker.size(); // let the sweep finish
    await new Promise<void>((r) => queueMicrotask(r));
    expect((await tracker.sweep()).length).toBe(0);
    expect((await tracker.size()).watermarks).toBe(0);
  });
});

describe("ReceiptTracker buffering", () => {
  it("a receipt that overtakes its message is applied when the message arrives", async () => {
    const { tracker, take, clock } = setup();
    const r = await tracker.ack(bob, b2, "read", ids("m1"));
    expect(r.buffered).toEqual(["m1"]);
    expect((await tracker.size()).buffered).toBe(1);
    clock.advance(4000);
    await tracker.track(envelope("m1", 1), bobDevices);
    expect(take()).toEqual([
      {
        toUser: alice,
        frame: { type: "receipt", status: "read", ids: ["m1"], by: bob, device: b2, ts: 5000 },
      },
      {
        toUser: bob,
        exceptDevice: b2,
        frame: { type: "receipt", status: "read", ids: ["m1"], by: bob, device: b2, ts: 5000 },
      },
    ]);
    expect((await tracker.size()).buffered).toBe(0);
    expect(clock.pending).toBe(1); // only the sweep interval
  });

  it("is dropped after bufferMs, through the clock", async () => {
    const { tracker, take, clock, dropped } = setup({ bufferMs: 2000 });
    await tracker.ack(bob, b1, "delivered", ids("m1"));
    clock.advance(1999);
    expect(dropped).toEqual([]);
    clock.advance(1);
    // At the deadline the tracker looks the message up in its store once more (another
    // node may have tracked it), so the drop lands after that lookup.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(dropped).toEqual([{ id: "m1", by: bob, device: b1, status: "delivered" }]);
    expect((await tracker.size()).buffered).toBe(0);
    await tracker.track(envelope("m1", 1), bobDevices);
    expect(take()).toEqual([]);
  });

  it("keeps at most maxBuffered receipts, dropping the oldest", async () => {
    const { tracker, dropped } = setup({ maxBuffered: 3 });
    await tracker.ack(bob, b1, "delivered", ids("x1", "x2", "x3", "x4"));
    expect((await tracker.size()).buffered).toBe(3);
    expect(dropped).toEqual([{ id: "x1", by: bob, device: b1, status: "delivered" }]);
  });
});

describe("ReceiptTracker late duplicates and retries", () => {
  it("remembers final ids for bufferMs only, and at most maxBuffered of them", async () => {
    const { tracker, clock } = setup({ bufferMs: 1000, maxBuffered: 2 });
    for (let i = 1; i <= 3; i++) {
      await tracker.track(envelope(`m${i}`, i), bobDevices);
      await tracker.ack(bob, b2, "delivered", ids(`m${i}`));
      await tracker.ack(bob, b1, "read", ids(`m${i}`));
    }
    // m1 fell out (only two remembered): its late duplicate is buffered as unknown.
    expect((await tracker.size()).recent).toBe(2);
    expect((await tracker.ack(bob, b2, "read", ids("m1"))).buffered).toEqual(["m1"]);
    expect((await tracker.ack(bob, b2, "read", ids("m3"))).ignored).toEqual([
      { id: "m3", reason: "final" },
    ]);
    clock.advance(1000);
    expect((await tracker.size()).recent).toBe(0);
  });

  it("a message read while another device still waits is remembered for retentionMs: that device failing tells no one", async () => {
    const { tracker, clock, take } = setup({ bufferMs: 1000, retentionMs: 60_000 });
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.ack(bob, b1, "read", ids("m1"));
    take();
    clock.advance(30_000);
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b2), "ttl_expired")).toEqual({
      changed: false,
    });
    expect(take()).toEqual([]);
    clock.advance(30_000);
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b2), "ttl_expired")).toEqual({
      error: "unknown_message",
    });
  });

  it("a retried track returns false and keeps the state", async () => {
    const { tracker, take } = setup();
    expect(await tracker.track(envelope("m1", 1), bobDevices)).toBe(true);
    await tracker.ack(bob, b1, "delivered", ids("m1"));
    take();
    expect(await tracker.track(envelope("m1", 1), bobDevices)).toBe(false);
    expect((await tracker.info(messageId("m1")))?.status).toBe("delivered");
    expect(await tracker.track(envelope("m2", 2), [dev(alice, a2)])).toBe(false);
    // Device keys work too (what the router's outbox holds).
    expect(await tracker.track(envelope("m3", 3), [deviceKey(bob, b1)])).toBe(true);
    expect(await tracker.size()).toMatchObject({ messages: 2, entries: 3 });
  });
});

describe("ReceiptTracker privacy", () => {
  it("a user with read receipts off: the sender sees delivered, never read; read sync still works", async () => {
    const off = new Set([bob]);
    const { tracker, take } = setup({ readReceipts: (u) => !off.has(u) });
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.track(envelope("m2", 2), bobDevices);
    // Read straight away: the sender gets delivered (read implies it), not read.
    await tracker.ack(bob, b1, "read", ids("m1"));
    expect(take().map((n) => [n.toUser, n.frame.status])).toEqual([
      [alice, "delivered"],
      [bob, "read"],
    ]);
    await tracker.ack(bob, b1, "delivered", ids("m2"));
    take();
    await tracker.watermark(bob, b1, dm, 2);
    expect(take().map((n) => n.toUser)).toEqual([bob]);
    const info = await tracker.info(messageId("m2"));
    expect(info).toBeUndefined(); // read by bob: final and released
  });

  it("reciprocal: who hides their read receipts does not see others'", async () => {
    const off = new Set([alice]);
    const { tracker, take } = setup({ readReceipts: async (u) => !off.has(u) });
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.ack(bob, b1, "delivered", ids("m1"));
    take();
    await tracker.ack(bob, b1, "read", ids("m1"));
    expect(take().map((n) => n.toUser)).toEqual([bob]);
  });

  it("non-reciprocal: the sender with receipts off still sees others' reads", async () => {
    const { tracker, take } = setup({ readReceipts: (u) => u !== alice, reciprocal: false });
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.ack(bob, b1, "read", ids("m1"));
    expect(take().map((n) => [n.toUser, n.frame.status])).toEqual([
      [alice, "read"],
      [bob, "read"],
    ]);
  });
});

describe("ReceiptTracker failures", () => {
  it("max-merges over the recipient's devices: failed only when no device got it, once, and a later delivery moves it up", async () => {
    const { tracker, take, clock } = setup();
    await tracker.track(envelope("m1", 1), bobDevices);
    clock.advance(10);
    // One of Bob's two devices failing is per-device detail: Bob may still get it on the other.
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b2), "ttl_expired")).toEqual({
      changed: true,
    });
    expect(take()).toEqual([]);
    expect((await tracker.info(messageId("m1")))?.members[0]).toMatchObject({
      status: "sent",
      devices: [
        { deviceId: b1, state: "sent" },
        { deviceId: b2, state: "failed" },
      ],
    });
    // The last device failing makes Bob's status failed: the sender is told, once.
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b1), "ttl_expired")).toEqual({
      changed: true,
    });
    expect(take()).toEqual([
      {
        toUser: alice,
        frame: {
          type: "receipt",
          status: "failed",
          ids: ["m1"],
          clientId: "c-m1",
          reason: "ttl_expired",
          ts: 1010,
        },
      },
    ]);
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b2), "again")).toEqual({
      changed: false,
    });
    // A late delivered from a failed device moves the status up.
    const late = await tracker.ack(bob, b2, "delivered", ids("m1"));
    expect(late.applied).toEqual(["m1"]);
    expect(take().map((n) => [n.frame.status, n.toUser])).toEqual([["delivered", alice]]);
    // A device that has it cannot fail.
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b2), "x")).toEqual({
      error: "illegal_transition",
    });
    expect(await tracker.failed(messageId("zz"), deviceKey(bob, b1), "x")).toEqual({
      error: "unknown_message",
    });
    expect(await tracker.failed(messageId("m1"), deviceKey(carol, c1), "x")).toEqual({
      error: "recipient_unknown",
    });
  });

  it("a device failing after another device delivered or read tells the sender nothing", async () => {
    const { tracker, take } = setup();
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.ack(bob, b1, "delivered", ids("m1"));
    expect(await tracker.failed(messageId("m1"), deviceKey(bob, b2), "ttl_expired")).toEqual({
      changed: true,
    });
    expect(take().map((n) => n.frame.status)).toEqual(["delivered"]);
    await tracker.ack(bob, b1, "read", ids("m1"));
    expect(
      take()
        .filter((n) => n.toUser === alice)
        .map((n) => n.frame.status),
    ).toEqual(["read"]);
  });

  it("a message failed on every device stays tracked (a late delivery may move it up)", async () => {
    const { tracker, released } = setup();
    await tracker.track(envelope("m1", 1), bobDevices);
    await tracker.failed(messageId("m1"), deviceKey(bob, b1), "x");
    await tracker.failed(messageId("m1"), deviceKey(bob, b2), "x");
    expect(released).toEqual([]);
    await tracker.ack(bob, b1, "read", ids("m1"));
    expect(released).toEqual([{ ids: ["m1"], reason: "final" }]);
  });
});

describe("ReceiptTracker memory", () => {
  it("does not grow: final messages are released, the rest expire with retention", async () => {
    const { tracker, clock } = setup({ retentionMs: 30_000, sweepIntervalMs: 5_000 });
    let maxMessages = 0;
    for (let i = 1; i <= 1500; i++) {
      await tracker.track(envelope(`m${i}`, i), bobDevices);
      // Two in three are read; the rest are never acked (bob went away).
      if (i % 3 !== 0) await tracker.ack(bob, b1, "read", ids(`m${i}`));
      // A receipt for a message that never comes.
      if (i % 100 === 0) await tracker.ack(bob, b2, "delivered", ids(`ghost${i}`));
      clock.advance(100);
      maxMessages = Math.max(maxMessages, (await tracker.size()).messages);
    }
    // 30 s retention (+5 s sweep) at one message per 100 ms, a third unread: about 117 live.
    expect(maxMessages).toBeLessThanOrEqual(120);
    expect((await tracker.size()).buffered).toBeLessThanOrEqual(1);
    clock.advance(120_000);
    await tracker.sweep();
    expect(await tracker.size()).toEqual({
      messages: 0,
      entries: 0,
      watermarks: 0,
      buffered: 0,
      recent: 0,
    });
  });

  it("releases expired messages with a `released` event", async () => {
    const { tracker, clock, released } = setup({ retentionMs: 1000, sweepIntervalMs: 0 });
    await tracker.track(envelope("m1", 1), bobDevices);
    clock.advance(1000);
    expect(await tracker.sweep()).toEqual(["m1"]);
    expect(released).toEqual([{ ids: ["m1"], reason: "expired" }]);
  });
});

describe("ReceiptTracker options", () => {
  it("rejects bad options at construction with invalid_option", () => {
    const bad = [
      { bufferMs: -1 },
      { retentionMs: 0 },
      { groupPolicy: "some" },
      { clock: {} },
      { reciprocal: "yes" },
    ];
    for (const o of bad) {
      try {
        new ReceiptTracker({ clock: new ManualClock(), ...(o as object) });
        expect.fail(`accepted ${JSON.stringify(o)}`);
      } catch (e) {
        expect(isRelayError(e, "invalid_option")).toBe(true);
      }
    }
    expect(() => new ReceiptTracker({ clock: new ManualClock(), bufferMs: 1.5 })).toThrow(
      "ReceiptTracker: Expected `bufferMs` to be an integer, got `1.5` (number)",
    );
  });

  it("an operation still queued when the tracker closes does not run (no timer after close)", async () => {
    const clock = new ManualClock();
    const memory = new MemoryReceiptStore();
    // A store that answers later, as a remote one does: the second ack queues behind the first.
    const store = new Proxy(memory, {
      get(target, key) {
        const v = Reflect.get(target, key, target);
        return typeof v === "function"
          ? (...args: unknown[]) => Promise.resolve(v.apply(target, args))
          : v;
      },
    });
    const tracker = new ReceiptTracker({ clock, store });
    const first = tracker.ack(bob, b1, "delivered", ids("m1"));
    const second = tracker.ack(bob, b1, "delivered", ids("m2"));
    tracker.close();
    await first;
    await expect(second).rejects.toMatchObject({ code: "closed" });
    expect(clock.pending).toBe(0);
  });

  it("rejects calls after close and stops its timers", async () => {
    const { tracker, clock } = setup();
    await tracker.ack(bob, b1, "read", ids("m1"));
    tracker.close();
    expect(clock.pending).toBe(0);
    await expect(tracker.track(envelope("m1", 1), bobDevices)).rejects.toMatchObject({
      code: "closed",
    });
  });
});
