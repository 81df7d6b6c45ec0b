import assert from "node:assert/strict";
import type { UserId } from "../../core/ids.js";
import {
  type ConversationId,
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  messageId,
  userId,
} from "../../core/index.js";
import type { ServerReceiptFrame } from "../../protocol/schemas.js";
import type { ReceiptStore, TrackedMessage } from "../../receipts/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

const alice = userId("alice");
const bob = userId("bob");
const carol = userId("carol");
const conv = conversationId("dm:alice:bob");
const other = conversationId("g:team");
const bob1 = deviceKey(bob, deviceId("b1"));
const bob2 = deviceKey(bob, deviceId("b2"));
const carol1 = deviceKey(carol, deviceId("c1"));

function msg(
  id: string,
  seq: number,
  opts: { conversation?: ConversationId; recipients?: DeviceKey[]; expiresAt?: number } = {},
): TrackedMessage {
  return {
    id: messageId(id),
    clientId: clientMessageId(`c-${id}`),
    from: alice,
    fromDevice: deviceId("a1"),
    conversation: opts.conversation ?? conv,
    seq,
    mode: "direct",
    expiresAt: opts.expiresAt ?? 1_000_000,
    recipients: opts.recipients ?? [bob1, bob2],
  };
}

/**
 * The behaviour every {@link ReceiptStore} must have, through its interface only. Run it
 * against each implementation: `for (const c of receiptStoreConformance(f)) it(c.name, c.run)`.
 */
export function receiptStoreConformance(factory: PortFactory<ReceiptStore>): ConformanceCase[] {
  const withStore =
    (fn: (s: ReceiptStore) => Promise<void>): (() => Promise<void>) =>
    async () => {
      const s = await factory.create();
      try {
        await fn(s);
      } finally {
        await factory.dispose?.(s);
      }
    };
  const c = (name: string, fn: (s: ReceiptStore) => Promise<void>): ConformanceCase => ({
    name: `ReceiptStore: ${name}`,
    run: withStore(fn),
  });
  const m1 = messageId("m1");

  return [
    c(
      "track then load returns the message with every recipient at the initial state",
      async (s) => {
        assert.equal(await s.track(msg("m1", 1), "sent"), true);
        const r = await s.load(m1);
        assert.ok(r);
        assert.equal(r.message.id, m1);
        assert.equal(r.message.seq, 1);
        assert.deepEqual([...r.message.recipients], [bob1, bob2]);
        assert.deepEqual(Array.from(r.states), ["sent", "sent"]);
        assert.ok(Array.from(r.deliveredAt).every(Number.isNaN));
        assert.ok(Array.from(r.readAt).every(Number.isNaN));
      },
    ),
    c("load of an unknown id is undefined", async (s) => {
      assert.equal(await s.load(messageId("nope")), undefined);
    }),
    c("track of a tracked id returns false and keeps its states", async (s) => {
      await s.track(msg("m1", 1), "sent");
      await s.setState(m1, 0, "delivered", 5);
      assert.equal(await s.track(msg("m1", 1), "accepted"), false);
      const r = await s.load(m1);
      assert.deepEqual(Array.from(r!.states), ["delivered", "sent"]);
    }),
    c("setState writes one device and stamps the first delivered and read times", async (s) => {
      await s.track(msg("m1", 1), "sent");
      await s.setState(m1, 1, "delivered", 10);
      await s.setState(m1, 1, "read", 20);
      await s.setState(m1, 0, "read", 30);
      const r = await s.load(m1);
      assert.deepEqual(Array.from(r!.states), ["read", "read"]);
      assert.deepEqual(Array.from(r!.deliveredAt), [30, 10]);
      assert.deepEqual(Array.from(r!.readAt), [30, 20]);
      // The first times stay.
      await s.setState(m1, 1, "read", 99);
      const again = await s.load(m1);
      assert.equal(again!.readAt[1], 20);
      assert.equal(again!.deliveredAt[1], 10);
    }),
    c("setState on an unknown id or index is ignored", async (s) => {
      await s.setState(messageId("nope"), 0, "read", 1);
      await s.track(msg("m1", 1), "sent");
      await s.setState(m1, 7, "read", 1);
      assert.deepEqual(Array.from((await s.load(m1))!.states), ["sent", "sent"]);
    }),
    c("a watermark only moves forward, one pointer per (reader, conversation)", async (s) => {
      const a = await s.advanceWatermark(bob, conv, 5, 10, 1000);
      assert.deepEqual(a, { advanced: true, previous: undefined });
      const older = await s.advanceWatermark(bob, conv, 3, 11, 1000);
      assert.equal(older.advanced, false);
      assert.deepEqual(older.previous, { upTo: 5, at: 10 });
      assert.equal((await s.advanceWatermark(bob, conv, 5, 12, 1000)).advanced, false);
      const next = await s.advanceWatermark(bob, conv, 9, 13, 1000);
      assert.deepEqual(next, { advanced: true, previous: { upTo: 5, at: 10 } });
      await s.advanceWatermark(carol, conv, 2, 14, 1000);
      await s.advanceWatermark(bob, other, 1, 15, 1000);
      const wms = await s.watermarks(conv);
      assert.equal(wms.size, 2);
      assert.deepEqual(wms.get(bob), { upTo: 9, at: 13 });
      assert.deepEqual(wms.get(carol), { upTo: 2, at: 14 });
      assert.deepEqual((await s.watermarks(other)).get(bob), { upTo: 1, at: 15 });
      assert.equal((await s.watermarks(conversationId("none"))).size, 0);
      assert.equal((await s.size()).watermarks, 3);
    }),
    c(
      "inRange lists tracked ids of one conversation with after < seq <= upTo, in seq order",
      async (s) => {
        for (const seq of [1, 2, 4, 3, 6]) await s.track(msg(`m${seq}`, seq), "sent");
        await s.track(msg("g5", 5, { conversation: other }), "sent");
        assert.deepEqual(await s.inRange(conv, 0, 10), ["m1", "m2", "m3", "m4", "m6"]);
        assert.deepEqual(await s.inRange(conv, 1, 4), ["m2", "m3", "m4"]);
        assert.deepEqual(await s.inRange(conv, 4, 4), []);
        assert.deepEqual(await s.inRange(conv, 6, 100), []);
        assert.deepEqual(await s.inRange(other, 0, 100), ["g5"]);
        await s.release([messageId("m3")]);
        assert.deepEqual(await s.inRange(conv, 0, 10), ["m1", "m2", "m4", "m6"]);
      },
    ),
    c("release forgets messages and counts only tracked ones", async (s) => {
      await s.track(msg("m1", 1), "sent");
      await s.track(msg("m2", 2, { recipients: [carol1] }), "sent");
      assert.deepEqual(await s.size(), { messages: 2, entries: 3, watermarks: 0 });
      assert.equal(await s.release([m1, messageId("nope"), m1]), 1);
      assert.equal(await s.load(m1), undefined);
      assert.deepEqual(await s.size(), { messages: 1, entries: 1, watermarks: 0 });
      assert.equal(await s.track(msg("m1", 1), "sent"), true);
    }),
    c("expire forgets messages and pointers whose expiresAt <= now", async (s) => {
      await s.track(msg("m1", 1, { expiresAt: 100 }), "sent");
      await s.track(msg("m2", 2, { expiresAt: 300 }), "sent");
      await s.track(msg("m0", 3, { expiresAt: 50 }), "sent");
      await s.advanceWatermark(bob, conv, 1, 0, 100);
      await s.advanceWatermark(carol, conv, 1, 0, 100);
      await s.advanceWatermark(carol, conv, 2, 60, 400); // refreshed by the advance
      assert.deepEqual([...(await s.expire(49))], []);
      assert.deepEqual([...(await s.expire(100))].sort(), ["m0", "m1"]);
      assert.equal(await s.load(m1), undefined);
      assert.ok(await s.load(messageId("m2")));
      const wms = await s.watermarks(conv);
      assert.equal(wms.has(bob), false);
      assert.deepEqual(wms.get(carol), { upTo: 2, at: 60 });
      assert.deepEqual(await s.size(), { messages: 1, entries: 2, watermarks: 1 });
      assert.deepEqual([...(await s.expire(1000))], ["m2"]);
      assert.deepEqual(await s.size(), { messages: 0, entries: 0, watermarks: 0 });
    }),
    c("a released message does not come back through expire", async (s) => {
      await s.track(msg("m1", 1, { expiresAt: 100 }), "sent");
      await s.release([m1]);
      assert.deepEqual([...(await s.expire(1000))], []);
    }),
    c("many messages track and release without leaking size", async (s) => {
      for (let i = 1; i <= 2000; i++) {
        await s.track(msg(`m${i}`, i, { recipients: [bob1], expiresAt: 10_000 + i }), "sent");
        if (i > 10) await s.release([messageId(`m${i - 10}`)]);
      }
      assert.deepEqual(await s.size(), { messages: 10, entries: 10, watermarks: 0 });
      assert.equal((await s.expire(100_000)).length, 10);
      assert.deepEqual(await s.size(), { messages: 0, entries: 0, watermarks: 0 });
    }),
    c("held frames are taken once, oldest first, without the expired, at most `max`", async (s) => {
      const alice = "alice" as UserId;
      const frame = (id: string): ServerReceiptFrame => ({
        type: "receipt",
        status: "failed",
        ids: [id],
        reason: "ttl_expired",
        ts: 1,
      });
      await s.hold(alice, frame("m1"), 50, 3);
      for (const id of ["m2", "m3", "m4"]) await s.hold(alice, frame(id), 1000, 3);
      await s.hold("bob" as UserId, frame("b1"), 1000, 3);
      const taken = await s.takeHeld(alice, 100);
      assert.deepEqual(
        taken.map((f) => ("ids" in f ? f.ids[0] : "")),
        ["m2", "m3", "m4"],
      );
      assert.deepEqual([...(await s.takeHeld(alice, 100))], []);
      assert.equal((await s.takeHeld("bob" as UserId, 100)).length, 1);
    }),
  ];
}
