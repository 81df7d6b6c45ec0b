import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisReceiptStore } from "../../../src/adapters/redis/index.js";
import {
  clientMessageId,
  conversationId,
  deviceId,
  deviceKey,
  isRelayError,
  messageId,
  userId,
} from "../../../src/core/index.js";
import type { TrackedMessage } from "../../../src/receipts/index.js";
import { receiptStoreConformance } from "../../../src/testing/conformance/receipt-store.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

function msg(id: string, seq: number, n: number, expiresAt = 1_000_000): TrackedMessage {
  return {
    id: messageId(id),
    clientId: clientMessageId(`c-${id}`),
    from: userId("alice"),
    fromDevice: deviceId("a1"),
    conversation: conversationId("g:{team}"),
    seq,
    mode: "aggregate",
    expiresAt,
    recipients: Array.from({ length: n }, (_, i) => deviceKey(userId(`u${i}`), deviceId("d"))),
  };
}

describe.skipIf(!url)("RedisReceiptStore", () => {
  const redis = redisFixture("receipts");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of receiptStoreConformance({
      create: async () =>
        new RedisReceiptStore({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  it("a 1024-member group message: acks from two nodes each write one device", async () => {
    const prefix = redis.subPrefix("group");
    const a = new RedisReceiptStore({ redis: await redis.client(), prefix });
    const b = new RedisReceiptStore({ redis: await redis.client(), prefix });
    const m = msg("g1", 1, 1024);
    expect(await a.track({ ...m, group: "team" as never }, "sent")).toBe(true);
    await Promise.all(
      Array.from({ length: 1024 }, (_, i) =>
        (i % 2 ? a : b).setState(m.id, i, i % 3 ? "delivered" : "read", 100 + i),
      ),
    );
    const r = await b.load(m.id);
    expect(r?.message.group).toBe("team");
    expect(Array.from(r!.states).filter((s) => s === "read").length).toBe(342);
    expect(r!.deliveredAt[5]).toBe(105);
    expect(Number.isNaN(r!.readAt[5]!)).toBe(true);
    expect(r!.readAt[6]).toBe(106);
    expect(await a.size()).toEqual({ messages: 1, entries: 1024, watermarks: 0 });
  });

  it("expire handles more items than one batch, messages and pointers mixed", async () => {
    const s = new RedisReceiptStore({ redis: await client(), prefix: redis.subPrefix("bulk") });
    for (let i = 1; i <= 600; i++) await s.track(msg(`m${i}`, i, 1, i), "sent");
    for (let i = 0; i < 300; i++)
      await s.advanceWatermark(userId(`r${i}`), conversationId("c"), 1, 0, i);
    expect((await s.expire(1000)).length).toBe(600);
    expect(await s.size()).toEqual({ messages: 0, entries: 0, watermarks: 0 });
  });

  it("fractional times round-trip", async () => {
    const s = new RedisReceiptStore({ redis: await client(), prefix: redis.subPrefix("frac") });
    await s.track(msg("m1", 1, 1), "sent");
    await s.setState(messageId("m1"), 0, "read", 1234.56789);
    expect((await s.load(messageId("m1")))?.readAt[0]).toBe(1234.56789);
    await s.advanceWatermark(userId("bob"), conversationId("c"), 3, 0.125, 10);
    expect((await s.watermarks(conversationId("c"))).get(userId("bob"))).toEqual({
      upTo: 3,
      at: 0.125,
    });
  });

  it("a lost connection gives store_unavailable", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const s = new RedisReceiptStore({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await s.load(messageId("m")).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
  });
});
