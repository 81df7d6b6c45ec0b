import assert from "node:assert/strict";
import {
  type ConversationId,
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  type MessageId,
  messageId,
  userId,
} from "../../core/index.js";
import type { MessageStore, Retention } from "../../router/index.js";
import type { ConformanceCase } from "./types.js";

/** Builds message stores for {@link messageStoreConformance}, one per retention mode. */
export interface MessageStoreFactory {
  /** A fresh, empty store keeping messages as `retention` says. */
  create(retention: Retention): Promise<MessageStore>;
  /** Frees a store made by `create`. */
  dispose?(store: MessageStore): Promise<void>;
}

const conv = conversationId("dm:alice:bob");
const phone: DeviceKey = deviceKey(userId("bob"), deviceId("phone"));
const laptop: DeviceKey = deviceKey(userId("bob"), deviceId("laptop"));

/** A plain envelope (no undefined-valued fields, so it compares equal after a round trip). */
function env(id: string, seq: number, ts: number, c: ConversationId = conv): Envelope {
  return {
    id: messageId(id),
    clientId: clientMessageId(`c-${id}`),
    from: userId("alice"),
    fromDevice: deviceId("a-phone"),
    to: { user: userId("bob") },
    conversation: c,
    seq,
    ts,
    text: `message ${id} ✓ 🎉`,
    priority: "normal",
  };
}

const idsOf = (list: readonly Envelope[]): string[] => list.map((e) => e.id);

/**
 * The behaviour every {@link MessageStore} must have, in both retention modes. Run it
 * against your own adapter: `for (const c of messageStoreConformance(factory)) it(c.name, c.run)`.
 */
export function messageStoreConformance(factory: MessageStoreFactory): ConformanceCase[] {
  const with_ = (
    name: string,
    retention: Retention,
    body: (store: MessageStore) => Promise<void>,
  ): ConformanceCase => ({
    name: `MessageStore (${retention.mode}): ${name}`,
    async run() {
      const store = await factory.create(retention);
      try {
        await body(store);
      } finally {
        await factory.dispose?.(store);
      }
    },
  });
  const relay: Retention = { mode: "relay" };
  const history: Retention = { mode: "history", historyMs: 1000 };
  const both = (name: string, body: (store: MessageStore) => Promise<void>): ConformanceCase[] => [
    with_(name, relay, body),
    with_(name, history, body),
  ];

  return [
    ...both("an unknown id is undefined", async (store) => {
      assert.equal(await store.get(messageId("nope")), undefined);
      assert.deepEqual([...(await store.getMany([messageId("nope")]))], []);
      assert.deepEqual([...(await store.getMany([]))], []);
    }),

    ...both("put then get returns the envelope, field for field", async (store) => {
      const e: Envelope = {
        ...env("m1", 1, 100),
        to: { user: userId("bob") },
        attachments: [
          {
            kind: "image",
            mime: "image/png",
            size: 1234,
            sha256: "ab".repeat(32),
            blobId: "blob:{1}",
            name: "cat 🐱.png",
          },
        ],
        priority: "high",
        system: { event: "member.added", actor: userId("alice"), members: [userId("carol")] },
      };
      await store.put(e, [phone]);
      assert.deepEqual(await store.get(e.id), e);
    }),

    ...both("getMany answers in the order asked, skipping missing ids", async (store) => {
      await store.put(env("m1", 1, 100), [phone]);
      await store.put(env("m2", 2, 101), [phone]);
      await store.put(env("m3", 3, 102), [phone]);
      const got = await store.getMany([
        messageId("m3"),
        messageId("x"),
        messageId("m1"),
        messageId("m2"),
      ]);
      assert.deepEqual(idsOf(got), ["m3", "m1", "m2"]);
      assert.deepEqual(got[0], env("m3", 3, 102));
    }),

    with_("relay: the message is dropped once every recipient device has it", relay, async (s) => {
      await s.put(env("m1", 1, 100), [phone, laptop]);
      await s.delivered(messageId("m1"), phone);
      assert.ok(await s.get(messageId("m1")), "still pending for the laptop");
      await s.delivered(messageId("m1"), phone);
      assert.ok(await s.get(messageId("m1")), "a repeated delivery changes nothing");
      await s.delivered(messageId("m1"), laptop);
      assert.equal(await s.get(messageId("m1")), undefined);
      await s.delivered(messageId("m1"), laptop);
      await s.delivered(messageId("never"), laptop);
    }),

    with_("relay: a device that is not a recipient does not count", relay, async (s) => {
      await s.put(env("m1", 1, 100), [phone]);
      await s.delivered(messageId("m1"), laptop);
      assert.ok(await s.get(messageId("m1")));
      await s.delivered(messageId("m1"), phone);
      assert.equal(await s.get(messageId("m1")), undefined);
    }),

    with_("relay: a message for no device is not kept", relay, async (s) => {
      await s.put(env("m1", 1, 100), []);
      assert.equal(await s.get(messageId("m1")), undefined);
    }),

    with_("relay: there is no history, and purge drops nothing", relay, async (s) => {
      await s.put(env("m1", 1, 100), [phone]);
      await s.put(env("m2", 2, 101), [phone]);
      assert.deepEqual([...(await s.history(conv, { limit: 10 }))], []);
      assert.equal(await s.purge(1_000_000), 0);
      assert.ok(await s.get(messageId("m1")), "undelivered relay messages are kept");
    }),

    with_("history: delivered messages are kept", history, async (s) => {
      await s.put(env("m1", 1, 100), [phone]);
      await s.delivered(messageId("m1"), phone);
      assert.deepEqual(await s.get(messageId("m1")), env("m1", 1, 100));
      await s.put(env("m2", 2, 101), []);
      assert.ok(await s.get(messageId("m2")), "even with no recipient");
    }),

    with_("history: pages back through a conversation, newest last", history, async (s) => {
      for (let i = 1; i <= 10; i++) await s.put(env(`m${i}`, i, 100 + i), [phone]);
      await s.put(env("other", 1, 105, conversationId("dm:alice:carol")), [phone]);
      assert.deepEqual(idsOf(await s.history(conv, { limit: 3 })), ["m8", "m9", "m10"]);
      assert.deepEqual(idsOf(await s.history(conv, { beforeSeq: 8, limit: 3 })), [
        "m5",
        "m6",
        "m7",
      ]);
      assert.deepEqual(idsOf(await s.history(conv, { beforeSeq: 3, limit: 5 })), ["m1", "m2"]);
      assert.deepEqual(idsOf(await s.history(conv, { beforeSeq: 1, limit: 5 })), []);
      assert.deepEqual(idsOf(await s.history(conv, { limit: 100 })).length, 10);
      assert.deepEqual(idsOf(await s.history(conv, { limit: 0 })), []);
      assert.deepEqual((await s.history(conv, { beforeSeq: 2, limit: 1 }))[0], env("m1", 1, 101));
      assert.deepEqual(idsOf(await s.history(conversationId("dm:alice:carol"), { limit: 9 })), [
        "other",
      ]);
      assert.deepEqual(idsOf(await s.history(conversationId("none"), { limit: 9 })), []);
    }),

    with_(
      "history: purge drops what is older than the retention, in every conversation",
      history,
      async (s) => {
        const other = conversationId("group:{g1}");
        await s.put(env("a1", 1, 100), [phone]);
        await s.put(env("a2", 2, 500), [phone]);
        await s.put(env("a3", 3, 1500), [phone]);
        await s.put(env("b1", 1, 200, other), [phone]);
        await s.put(env("b2", 2, 2000, other), [phone]);
        // historyMs is 1000: at 1600 the cutoff is 600.
        assert.equal(await s.purge(1600), 3);
        assert.equal(await s.get(messageId("a1")), undefined);
        assert.equal(await s.get(messageId("b1")), undefined);
        assert.deepEqual(idsOf(await s.history(conv, { limit: 10 })), ["a3"]);
        assert.deepEqual(idsOf(await s.history(other, { limit: 10 })), ["b2"]);
        assert.equal(await s.purge(1600), 0, "purging again drops nothing");
        assert.equal(await s.purge(2500), 0, "a message exactly at the cutoff is kept");
        assert.equal(await s.purge(2501), 1);
        assert.deepEqual(idsOf(await s.history(conv, { limit: 10 })), []);
        assert.deepEqual(idsOf(await s.history(other, { limit: 10 })), ["b2"]);
      },
    ),

    with_("history: purge copes with many messages at once", history, async (s) => {
      const n = 1200;
      const ids: MessageId[] = [];
      for (let i = 1; i <= n; i++) {
        ids.push(messageId(`m${i}`));
      }
      await Promise.all(ids.map((id, i) => s.put(env(id, i + 1, i), [phone])));
      assert.equal(await s.purge(n - 10 + 1000), n - 10);
      assert.deepEqual(idsOf(await s.history(conv, { limit: n })).length, 10);
    }),

    ...both("ids with colons, braces and unicode round-trip", async (store) => {
      const odd = env("m:{1} é", 1, 100, conversationId("dm:{a}:b 📱"));
      const dev = deviceKey(userId("u:{x}"), deviceId("d {1}"));
      await store.put(odd, [dev]);
      assert.deepEqual(await store.get(odd.id), odd);
      assert.deepEqual(await store.getMany([odd.id]), [odd]);
      await store.delivered(odd.id, dev);
    }),
  ];
}
