import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import {
  RedisDeviceRegistry,
  RedisMessageStore,
  RedisSequenceStore,
} from "../../../src/adapters/redis/index.js";
import {
  clientMessageId,
  conversationId,
  deviceId,
  deviceKey,
  isRelayError,
  messageId,
  userId,
} from "../../../src/core/index.js";
import { deviceRegistryConformance } from "../../../src/testing/conformance/device-registry.js";
import { messageStoreConformance } from "../../../src/testing/conformance/message-store.js";
import { sequenceStoreConformance } from "../../../src/testing/conformance/sequence-store.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

describe.skipIf(!url)("Redis router stores", () => {
  const redis = redisFixture("router");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("RedisDeviceRegistry conformance", () => {
    for (const c of deviceRegistryConformance({
      create: async () =>
        new RedisDeviceRegistry({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  describe("RedisSequenceStore conformance", () => {
    for (const c of sequenceStoreConformance({
      create: async () =>
        new RedisSequenceStore({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  describe("RedisMessageStore conformance", () => {
    for (const c of messageStoreConformance({
      create: async (retention) =>
        new RedisMessageStore({ redis: await client(), prefix: redis.subPrefix(), retention }),
    })) {
      it(c.name, c.run);
    }
  });

  it("two nodes (two connections) share devices, sequences and messages", async () => {
    const prefix = redis.subPrefix("shared");
    const [a, b] = [await redis.client(), await redis.client()];
    await new RedisDeviceRegistry({ redis: a, prefix }).link(userId("bob"), deviceId("phone"));
    expect(await new RedisDeviceRegistry({ redis: b, prefix }).devices(userId("bob"))).toEqual([
      "phone",
    ]);
    const c = conversationId("dm:alice:bob");
    const seqA = new RedisSequenceStore({ redis: a, prefix });
    const seqB = new RedisSequenceStore({ redis: b, prefix });
    const got = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? seqA : seqB).next(c)),
    );
    expect(new Set(got).size).toBe(50);
    expect(await seqB.current(c)).toBe(50);
    const dev = deviceKey(userId("bob"), deviceId("phone"));
    const env = {
      id: messageId("m1"),
      clientId: clientMessageId("c1"),
      from: userId("alice"),
      fromDevice: deviceId("p"),
      to: { user: userId("bob") },
      conversation: c,
      seq: 1,
      ts: 1,
      text: "hi",
      priority: "normal" as const,
    };
    await new RedisMessageStore({ redis: a, prefix }).put(env, [dev]);
    const msB = new RedisMessageStore({ redis: b, prefix });
    expect(await msB.get(env.id)).toEqual(env);
    await msB.delivered(env.id, dev);
    expect(await new RedisMessageStore({ redis: a, prefix }).get(env.id)).toBeUndefined();
  });

  it("keeps multi-key state under one hash tag, so it runs on Redis Cluster", async () => {
    const c = await client();
    const prefix = redis.subPrefix("tag");
    const store = new RedisMessageStore({
      redis: c,
      prefix,
      retention: { mode: "history", historyMs: 10 },
    });
    await store.put(
      {
        id: messageId("m1"),
        clientId: clientMessageId("c1"),
        from: userId("alice"),
        fromDevice: deviceId("p"),
        to: { user: userId("bob") },
        conversation: conversationId("dm:{a}:b"),
        seq: 1,
        ts: 1,
        text: "hi",
        priority: "normal",
      },
      [],
    );
    const keys = await c.keys(`*${prefix}*`);
    expect(keys.length).toBe(3);
    const slots = new Set(
      await Promise.all(keys.map((k) => c.cluster("KEYSLOT", k).catch(() => k))),
    );
    // Single-server Redis rejects CLUSTER KEYSLOT; then check the tag textually.
    if ([...slots].every((s) => typeof s === "number")) expect(slots.size).toBe(1);
    for (const k of keys) expect(k.startsWith(`{${prefix}:msg}:`)).toBe(true);
  });

  it("rejects bad options with invalid_option", () => {
    const fake = { evalsha() {}, publish() {} } as never;
    expect(() => new RedisMessageStore({ redis: fake, retention: { mode: "x" } as never })).toThrow(
      expect.objectContaining({ code: "invalid_option", path: "retention.mode" }),
    );
    expect(
      () => new RedisMessageStore({ redis: fake, retention: { mode: "history", historyMs: -1 } }),
    ).toThrow(expect.objectContaining({ code: "invalid_option" }));
    expect(() => new RedisDeviceRegistry({ redis: {} as never })).toThrow(
      expect.objectContaining({ code: "invalid_option" }),
    );
    expect(() => new RedisSequenceStore({ redis: fake, prefix: "a{b" })).toThrow(
      expect.objectContaining({ code: "invalid_option", path: "prefix" }),
    );
  });

  it("a lost connection gives store_unavailable, not a crash", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const prefix = redis.subPrefix("dead");
    const retry = { minDelayMs: 1 };
    c.disconnect();
    const errs = await Promise.all([
      new RedisDeviceRegistry({ redis: c, prefix, retry }).devices(userId("a")).catch((e) => e),
      new RedisSequenceStore({ redis: c, prefix, retry }).next(conversationId("c")).catch((e) => e),
      new RedisMessageStore({ redis: c, prefix, retry }).get(messageId("m")).catch((e) => e),
    ]);
    for (const e of errs) expect(isRelayError(e, "store_unavailable")).toBe(true);
  });
});
