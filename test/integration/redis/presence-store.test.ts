import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisPresenceStore } from "../../../src/adapters/redis/index.js";
import { deviceId, isRelayError, nodeId, userId } from "../../../src/core/index.js";
import { presenceStoreConformance } from "../../../src/testing/conformance/presence-store.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

describe.skipIf(!url)("RedisPresenceStore", () => {
  const redis = redisFixture("presence");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of presenceStoreConformance({
      create: async () =>
        new RedisPresenceStore({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  it("a node dies: another node (own connection) expires its users at its last heartbeat", async () => {
    const prefix = redis.subPrefix("nodes");
    const n1 = new RedisPresenceStore({ redis: await redis.client(), prefix });
    const n2 = new RedisPresenceStore({ redis: await redis.client(), prefix });
    await n1.heartbeat(nodeId("n1"), 1000, 3000);
    await n2.heartbeat(nodeId("n2"), 1000, 3000);
    for (let i = 0; i < 300; i++) {
      await n1.write({
        userId: userId(`u${i}`),
        deviceId: deviceId("phone"),
        nodeId: nodeId(i % 3 === 0 ? "n2" : "n1"),
        connected: true,
        lastActive: 900,
      });
    }
    const users = await n2.expireNode(nodeId("n1"), 1500);
    expect(users.length).toBe(200);
    const [r] = await n2.read(userId("u1"), 2000);
    expect(r).toMatchObject({ connected: false, lastActive: 1500, nodeId: "n1" });
    expect((await n2.read(userId("u0"), 2000))[0]?.connected).toBe(true);
    expect(await redis.client().then((c) => c.scard(`${prefix}:pres:node:{n1}`))).toBe(0);
  });

  it("odd ids and fractional times round-trip", async () => {
    const s = new RedisPresenceStore({ redis: await client(), prefix: redis.subPrefix("odd") });
    const rec = {
      userId: userId("u:{x}|y"),
      deviceId: deviceId("d|{1} 📱"),
      nodeId: nodeId("n|{a}:b"),
      connected: true,
      lastActive: 1234.5678,
    };
    await s.heartbeat(rec.nodeId, 0.25, 10_000);
    await s.write(rec);
    expect(await s.read(rec.userId, 1)).toEqual([rec]);
    expect(await s.expireNode(rec.nodeId, 9999.75)).toEqual([rec.userId]);
    expect(await s.read(rec.userId, 1)).toEqual([
      { ...rec, connected: false, lastActive: 9999.75 },
    ]);
  });

  it("a lost connection gives store_unavailable", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const s = new RedisPresenceStore({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await s.read(userId("a"), 0).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
  });
});
