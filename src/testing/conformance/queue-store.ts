import assert from "node:assert/strict";
import {
  type ClientMessageId,
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  type MessageId,
  messageId,
  type Priority,
  userId,
} from "../../core/index.js";
import {
  type QueuedMessage,
  type QueueStore,
  type SentRecord,
  sentRecordOf,
} from "../../queue/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

const alice = userId("alice");
/** Alice's device a1, whose client ids the dedupe records are under. */
const aliceA1 = deviceKey(alice, deviceId("a1"));
const phone = deviceKey(userId("bob"), deviceId("phone"));
const laptop = deviceKey(userId("bob"), deviceId("laptop"));
const carol = deviceKey(userId("carol"), deviceId("web"));

function message(n: number, priority: Priority = "normal", at = 1000): QueuedMessage {
  const envelope: Envelope = {
    id: messageId(`m${n}`),
    clientId: clientMessageId(`c${n}`),
    from: alice,
    fromDevice: deviceId("a1"),
    to: { user: userId("bob") },
    conversation: conversationId("dm:alice:bob"),
    seq: n,
    ts: at,
    text: `hello ${n} ✓ ünïcode`,
    attachments: [
      {
        kind: "image",
        mime: "image/png",
        size: 10,
        sha256: "ab".repeat(32),
        blobId: `b${n}`,
      },
    ],
    priority,
  };
  return { envelope, enqueuedAt: at, expiresAt: at + 60_000 };
}

const ids = (list: readonly QueuedMessage[]): MessageId[] => list.map((m) => m.envelope.id);
const record = (n: number): SentRecord => ({
  messageId: messageId(`m${n}`),
  conversation: conversationId("dm:alice:bob"),
  seq: n,
  ts: 1000 + n,
});

/**
 * The behaviour every {@link QueueStore} must show; the memory and Redis stores both run it.
 * @example for (const c of queueStoreConformance({ create: async () => new MemoryQueueStore() })) it(c.name, c.run);
 */
export function queueStoreConformance(factory: PortFactory<QueueStore>): ConformanceCase[] {
  const use = (name: string, body: (store: QueueStore) => Promise<void>): ConformanceCase => ({
    name: `QueueStore: ${name}`,
    run: async () => {
      const store = await factory.create();
      try {
        await body(store);
      } finally {
        await factory.dispose?.(store);
      }
    },
  });

  return [
    use("starts empty", async (s) => {
      assert.deepEqual(await s.devices(), []);
      assert.deepEqual(await s.list(phone), []);
      assert.equal(await s.count(phone), 0);
      assert.equal(await s.remove(phone, [messageId("nope")]), 0);
    }),

    use("append stores one entry per device and lists in append order", async (s) => {
      for (const n of [3, 1, 2]) {
        const r = await s.append(message(n), [phone, laptop], 100);
        assert.deepEqual(r, { ok: true, added: 2 });
      }
      assert.deepEqual(ids(await s.list(phone)), ["m3", "m1", "m2"]);
      assert.deepEqual(ids(await s.list(laptop)), ["m3", "m1", "m2"]);
      assert.equal(await s.count(phone), 3);
      assert.deepEqual([...(await s.devices())].sort(), [laptop, phone].sort());
    }),

    use("entries round-trip intact", async (s) => {
      const m = message(7, "low", 4242);
      await s.append(m, [phone], 10);
      const [got] = await s.list(phone);
      assert.deepEqual(got, m);
    }),

    use("append is idempotent per (device, message id)", async (s) => {
      await s.append(message(1), [phone], 10);
      const again = await s.append(message(1), [phone, laptop], 10);
      assert.deepEqual(again, { ok: true, added: 1 });
      assert.deepEqual(ids(await s.list(phone)), ["m1"]);
      assert.deepEqual(ids(await s.list(laptop)), ["m1"]);
    }),

    use("append over the cap stores nothing and names the full devices", async (s) => {
      await s.append(message(1), [phone], 2);
      await s.append(message(2), [phone], 2);
      const r = await s.append(message(3), [laptop, phone, carol], 2);
      assert.equal(r.ok, false);
      assert.deepEqual(!r.ok && "full" in r ? [...r.full] : [], [phone]);
      assert.equal(await s.count(laptop), 0);
      assert.equal(await s.count(carol), 0);
      assert.deepEqual(ids(await s.list(phone)), ["m1", "m2"]);
      // Re-appending an entry already there does not count against the cap.
      assert.deepEqual(await s.append(message(2), [phone], 2), { ok: true, added: 0 });
    }),

    use("remove deletes by id, ignores unknown ids, and keeps order", async (s) => {
      for (const n of [1, 2, 3, 4]) await s.append(message(n), [phone, laptop], 10);
      assert.equal(await s.remove(phone, [messageId("m2"), messageId("m9"), messageId("m4")]), 2);
      assert.deepEqual(ids(await s.list(phone)), ["m1", "m3"]);
      assert.deepEqual(ids(await s.list(laptop)), ["m1", "m2", "m3", "m4"]);
      assert.equal(await s.remove(phone, [messageId("m2")]), 0);
      await s.append(message(5), [phone], 10);
      assert.deepEqual(ids(await s.list(phone)), ["m1", "m3", "m5"]);
    }),

    use("a device with no entries left is not listed", async (s) => {
      await s.append(message(1), [phone, laptop], 10);
      await s.remove(phone, [messageId("m1")]);
      assert.deepEqual(await s.devices(), [laptop]);
      assert.equal(await s.count(phone), 0);
    }),

    use("the cap frees up after remove", async (s) => {
      await s.append(message(1), [phone], 1);
      assert.equal((await s.append(message(2), [phone], 1)).ok, false);
      await s.remove(phone, [messageId("m1")]);
      assert.deepEqual(await s.append(message(2), [phone], 1), { ok: true, added: 1 });
    }),

    use("getSent finds a live record and forgets it after expiry", async (s) => {
      const c: ClientMessageId = clientMessageId("c1");
      assert.equal(await s.getSent(aliceA1, c, 0), undefined);
      assert.deepEqual(await s.putSent(aliceA1, c, record(1), 5000, 1000), record(1));
      assert.deepEqual(await s.getSent(aliceA1, c, 4999), record(1));
      assert.equal(await s.getSent(aliceA1, c, 5000), undefined);
      assert.equal(
        await s.getSent(deviceKey(userId("mallory"), deviceId("a1")), c, 2000),
        undefined,
      );
      assert.equal(await s.getSent(aliceA1, clientMessageId("c2"), 2000), undefined);
    }),

    use("putSent: the first live record wins; an expired one is replaced", async (s) => {
      const c = clientMessageId("c1");
      await s.putSent(aliceA1, c, record(1), 5000, 1000);
      assert.deepEqual(await s.putSent(aliceA1, c, record(2), 9000, 2000), record(1));
      assert.deepEqual(await s.getSent(aliceA1, c, 3000), record(1));
      assert.deepEqual(await s.putSent(aliceA1, c, record(3), 9000, 6000), record(3));
      assert.deepEqual(await s.getSent(aliceA1, c, 7000), record(3));
    }),

    use("append with dedupeUntil also records the sent receipt, first write winning", async (s) => {
      const m = message(1);
      await s.append(m, [phone], 10, 5000);
      assert.deepEqual(
        await s.getSent(aliceA1, clientMessageId("c1"), 4999),
        sentRecordOf(m.envelope),
      );
      assert.equal(await s.getSent(aliceA1, clientMessageId("c1"), 5000), undefined);
      const other = {
        ...message(2),
        envelope: { ...message(2).envelope, clientId: clientMessageId("c1") },
      };
      // The same send accepted concurrently elsewhere: nothing stored, the original returned.
      assert.deepEqual(await s.append(other, [phone], 10, 6000), {
        ok: false,
        duplicate: sentRecordOf(m.envelope),
      });
      assert.deepEqual(ids(await s.list(phone)), ["m1"]);
      assert.deepEqual(
        await s.getSent(aliceA1, clientMessageId("c1"), 2000),
        sentRecordOf(m.envelope),
      );
      // Re-appending the same message (a retried write) is not a duplicate.
      assert.deepEqual(await s.append(m, [phone], 10, 5000), { ok: true, added: 0 });
    }),

    use(
      "dedupe records are per sending device: another device may reuse a client id",
      async (s) => {
        const m = message(1);
        await s.append(m, [phone], 10, 5000);
        const fromLaptop = {
          ...message(2),
          envelope: {
            ...message(2).envelope,
            clientId: clientMessageId("c1"),
            fromDevice: deviceId("a2"),
          },
        };
        assert.deepEqual(await s.append(fromLaptop, [phone], 10, 5000), { ok: true, added: 1 });
        assert.deepEqual(
          await s.getSent(deviceKey(alice, deviceId("a2")), clientMessageId("c1"), 1000),
          sentRecordOf(fromLaptop.envelope),
        );
        assert.deepEqual(
          await s.getSent(aliceA1, clientMessageId("c1"), 1000),
          sentRecordOf(m.envelope),
        );
      },
    ),

    use("a refused append records no sent receipt", async (s) => {
      await s.append(message(1), [phone], 1);
      const r = await s.append(message(2), [phone], 1, 5000);
      assert.equal(r.ok, false);
      assert.equal(await s.getSent(aliceA1, clientMessageId("c2"), 1000), undefined);
    }),

    use("dedupe records expire independently over time", async (s) => {
      for (let n = 0; n < 30; n++) {
        await s.putSent(aliceA1, clientMessageId(`c${n}`), record(n), 10_000 + n * 1000, n * 100);
      }
      const now = 25_500; // c0..c15 have expired
      await s.putSent(aliceA1, clientMessageId("late"), record(99), now + 10_000, now);
      for (let n = 0; n < 30; n++) {
        const got = await s.getSent(aliceA1, clientMessageId(`c${n}`), now);
        assert.deepEqual(got, n <= 15 ? undefined : record(n), `c${n}`);
      }
      assert.deepEqual(await s.getSent(aliceA1, clientMessageId("late"), now), record(99));
      assert.deepEqual(
        await s.putSent(aliceA1, clientMessageId("c3"), record(3), now + 5000, now),
        record(3),
      );
      assert.deepEqual(await s.getSent(aliceA1, clientMessageId("c3"), now + 4999), record(3));
    }),

    use("many devices and messages stay separate", async (s) => {
      const devices: DeviceKey[] = [];
      for (let d = 0; d < 20; d++) devices.push(deviceKey(userId(`u${d}`), deviceId("x")));
      for (let n = 0; n < 50; n++) {
        await s.append(
          message(n),
          devices.filter((_, i) => i % ((n % 5) + 1) === 0),
          1000,
        );
      }
      for (let d = 0; d < 20; d++) {
        const expected: string[] = [];
        for (let n = 0; n < 50; n++) if (d % ((n % 5) + 1) === 0) expected.push(`m${n}`);
        assert.deepEqual(ids(await s.list(devices[d]!)), expected);
      }
    }),
  ];
}
