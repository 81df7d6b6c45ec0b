import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisGroupStore } from "../../../src/adapters/redis/index.js";
import { groupId, isRelayError, userId } from "../../../src/core/index.js";
import type { GroupRecord } from "../../../src/groups/index.js";
import { groupStoreConformance } from "../../../src/testing/conformance/group-store.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

const record = (id: string, members: string[]): GroupRecord => ({
  id: groupId(id),
  name: id,
  createdBy: userId(members[0] ?? "x"),
  createdAt: 1,
  members: members.map(userId),
  admins: members.slice(0, 1).map(userId),
  receipts: "none",
});

describe.skipIf(!url)("RedisGroupStore", () => {
  const redis = redisFixture("groups");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of groupStoreConformance({
      create: async () => new RedisGroupStore({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  it("racing addMembers from two nodes never exceed the limit", async () => {
    const prefix = redis.subPrefix("race");
    const a = new RedisGroupStore({ redis: await redis.client(), prefix });
    const b = new RedisGroupStore({ redis: await redis.client(), prefix });
    await a.create(record("g", ["owner"]));
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).addMembers(groupId("g"), [userId(`u${i}`), userId(`v${i}`)], 21),
      ),
    );
    const ok = results.filter((r) => r.status === "ok").length;
    expect(ok).toBe(10);
    expect((await b.members(groupId("g")))?.length).toBe(21);
  });

  it("racing removeMembers and setAdmin keep admins a subset of members", async () => {
    const prefix = redis.subPrefix("admins");
    const a = new RedisGroupStore({ redis: await redis.client(), prefix });
    const b = new RedisGroupStore({ redis: await redis.client(), prefix });
    const users = Array.from({ length: 30 }, (_, i) => `u${i}`);
    await a.create(record("g", users));
    await Promise.all(
      users.flatMap((u, i) => [
        (i % 2 ? a : b).setAdmin(groupId("g"), userId(u), true),
        (i % 2 ? b : a).removeMembers(groupId("g"), [userId(u)]),
      ]),
    );
    const g = await a.get(groupId("g"));
    for (const admin of g?.admins ?? []) expect(g?.members).toContain(admin);
  });

  it("keeps a group's keys in one slot, by group id", async () => {
    const c = await client();
    const prefix = redis.subPrefix("tag");
    const s = new RedisGroupStore({ redis: c, prefix });
    await s.create(record("g:{1}", ["a", "b"]));
    const keys = (await c.keys(`${prefix}:grp:*`)).sort();
    expect(keys).toEqual([
      `${prefix}:grp:{g:{1}}:admins`,
      `${prefix}:grp:{g:{1}}:members`,
      `${prefix}:grp:{g:{1}}:meta`,
    ]);
    expect(await s.ids()).toEqual(["g:{1}"]);
    await c.srem(`{${prefix}:grp}:ids`, "g:{1}");
    await c.sadd(`{${prefix}:grp}:ids`, "ghost");
    expect(await s.ids()).toEqual([]);
  });

  it("a lost connection gives store_unavailable", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const s = new RedisGroupStore({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await s.get(groupId("g")).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
  });
});
