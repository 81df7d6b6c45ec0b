import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisSessionDirectory } from "../../../src/adapters/redis/index.js";
import { deviceId, isRelayError, nodeId, sessionId, userId } from "../../../src/core/index.js";
import type { SessionDirectory } from "../../../src/router/index.js";
import { sessionDirectoryConformance } from "../../../src/testing/conformance/session-directory.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

describe.skipIf(!url)("RedisSessionDirectory", () => {
  const redis = redisFixture("sessdir");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of sessionDirectoryConformance({
      create: async () =>
        new RedisSessionDirectory({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  it("keeps every key under one hash tag, so it runs on Redis Cluster", async () => {
    const c = await client();
    const prefix = redis.subPrefix("tag");
    const dir = new RedisSessionDirectory({ redis: c, prefix });
    await dir.register({
      sessionId: sessionId("s1"),
      userId: userId("alice"),
      deviceId: deviceId("phone"),
      nodeId: nodeId("n1"),
      connectedAt: 1,
    });
    const keys = (await c.keys(`*${prefix}*`)).sort();
    expect(keys.length).toBeGreaterThanOrEqual(3);
    for (const k of keys) expect(k.startsWith(`{${prefix}:sess}:`)).toBe(true);
    const slots = new Set(
      await Promise.all(keys.map((k) => c.call("CLUSTER", "KEYSLOT", k).catch(() => "n/a"))),
    );
    // CLUSTER KEYSLOT works on a non-cluster server too: one slot for all keys.
    expect(slots.size).toBe(1);
  });

  it("two directories on separate clients share the same data", async () => {
    const prefix = redis.subPrefix("two");
    const a: SessionDirectory = new RedisSessionDirectory({ redis: await redis.client(), prefix });
    const b: SessionDirectory = new RedisSessionDirectory({ redis: await redis.client(), prefix });
    await a.register({
      sessionId: sessionId("s1"),
      userId: userId("alice"),
      deviceId: deviceId("phone"),
      nodeId: nodeId("n1"),
      connectedAt: 1,
    });
    expect((await b.lookup(userId("alice"))).map((s) => s.sessionId)).toEqual(["s1"]);
    expect((await b.dropNode(nodeId("n1"))).length).toBe(1);
    expect(await a.lookup(userId("alice"))).toEqual([]);
  });

  it("handles thousands of sessions per user and per node (chunked scripts)", async () => {
    const dir = new RedisSessionDirectory({
      redis: await client(),
      prefix: redis.subPrefix("big"),
    });
    const n = 2500;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        dir.register({
          sessionId: sessionId(`s${i}`),
          userId: userId(i < 2100 ? "crowd" : `u${i}`),
          deviceId: deviceId(`d${i}`),
          nodeId: nodeId("n1"),
          connectedAt: i,
        }),
      ),
    );
    expect((await dir.lookup(userId("crowd"))).length).toBe(2100);
    expect((await dir.sessionsOf(nodeId("n1"))).length).toBe(n);
    expect((await dir.dropNode(nodeId("n1"))).length).toBe(n);
    expect(await dir.lookup(userId("crowd"))).toEqual([]);
  });

  it("rejects bad options with invalid_option", () => {
    expect(() => new RedisSessionDirectory({ redis: {} as never })).toThrow(
      expect.objectContaining({ code: "invalid_option" }),
    );
    expect(
      () =>
        new RedisSessionDirectory({
          redis: { evalsha() {}, publish() {} } as never,
          prefix: "a{b}",
        }),
    ).toThrow(expect.objectContaining({ code: "invalid_option", path: "prefix" }));
  });

  it("a closed connection gives store_unavailable with the ioredis error as cause", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const dir = new RedisSessionDirectory({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await dir.lookup(userId("alice")).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    expect((err as Error).message).toMatch(/RedisSessionDirectory\.lookup failed after 3 attempt/);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });
});
