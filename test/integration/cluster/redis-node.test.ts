/**
 * createRedisNode in-process: option validation, two nodes relaying through one Redis,
 * re-registration after Redis lost the data (selfExpired), and a clean leave.
 */
import { afterAll, describe, expect, it } from "vitest";
import { createRedisNode, RedisNode } from "../../../src/adapters/redis/index.js";
import { type DeviceId, isRelayError, type UserId } from "../../../src/core/index.js";
import type { Transport } from "../../../src/gateway/index.js";
import { deleteKeysWithPrefix, redisFixture, redisUrl } from "../redis/redis-helpers.js";

const url = redisUrl();

function socket() {
  const frames: { type: string; [k: string]: unknown }[] = [];
  const transport: Transport = {
    send: (d) => frames.push(JSON.parse(d) as { type: string }),
    close() {},
    bufferedAmount: 0,
  };
  return { transport, frames };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("RedisNode options", () => {
  it("refuses bad options at construction with invalid_option", () => {
    const bad = [
      { redis: "", authenticate: () => undefined },
      { redis: "redis://127.0.0.1:1", authenticate: 42 },
      { redis: "redis://127.0.0.1:1", authenticate: () => undefined, prefix: "a{b}" },
      {
        redis: "redis://127.0.0.1:1",
        authenticate: () => undefined,
        ttlMs: 1000,
        heartbeatMs: 1000,
      },
    ];
    for (const o of bad) {
      let err: unknown;
      try {
        new RedisNode(o as never);
      } catch (e) {
        err = e;
      }
      expect(isRelayError(err) && err.code).toBe("invalid_option");
    }
  });
});

describe.skipIf(!url)("RedisNode on Redis", () => {
  const redis = redisFixture("node");
  const nodes: RedisNode<string>[] = [];
  afterAll(async () => {
    for (const n of nodes) await n.close();
    await redis.close();
  });
  const mk = async (name: string) => {
    const n = await createRedisNode<string>({
      redis: await redis.client(),
      prefix: redis.prefix,
      name,
      ttlMs: 600,
      heartbeatMs: 100,
      resyncMs: 200,
      authenticate: (user) => ({ userId: user, deviceId: "d1" }),
    });
    nodes.push(n);
    return n;
  };

  it("a message for a device offline everywhere fails with ttl_expired when its TTL runs out", async () => {
    const n = await createRedisNode<string>({
      redis: await redis.client(),
      prefix: `${redis.prefix}-ttl`,
      name: "ttl",
      ttlMs: 600,
      heartbeatMs: 100,
      expirySweepMs: 50,
      queue: { ttlMs: 300 },
      authenticate: (user) => ({ userId: user, deviceId: "d1" }),
    });
    nodes.push(n);
    await n.router.linkDevice("bob" as UserId, "phone" as never);
    const alice = socket();
    const conn = (await n.gateway.open(alice.transport, "alice"))!;
    await n.gateway.receive(
      conn,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
    );
    await until("alice gets failed", () =>
      alice.frames.some((f) => f.type === "receipt" && f.status === "failed"),
    );
    const failed = alice.frames.find((f) => f.type === "receipt" && f.status === "failed");
    expect(failed).toMatchObject({ reason: "ttl_expired", clientId: "c1" });
    await n.close();
    nodes.splice(nodes.indexOf(n), 1);
  });

  it("keeps live nodes on a hash ring and sends group questions to the owner", async () => {
    const a = await mk("ring-a");
    const b = await mk("ring-b");
    await until("both rings hold both nodes", () => a.ring.size === 2 && b.ring.size === 2);
    // Every group has one owner, the same on both nodes.
    const owners = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const id = `g${i}` as never;
      expect(a.ring.lookup(id)).toBe(b.ring.lookup(id));
      owners.add(a.ring.lookup(id)!);
    }
    expect(owners).toEqual(new Set([a.nodeId, b.nodeId]));
    // A group created through node a is served through node b: asked of its owner.
    const asked: string[] = [];
    const count = (n: RedisNode<string>) =>
      n.router.handle("groups", async (request) => {
        asked.push(n.nodeId);
        return n.groupDirectory.handle(request as never);
      });
    count(a);
    count(b);
    const g = await a.groupDirectory.create("ann" as UserId, { members: ["ben" as UserId] });
    const owner = a.ring.lookup(g.id)!;
    asked.length = 0;
    expect(await b.groupDirectory.members(g.id)).toEqual(["ann", "ben"]);
    if (owner === a.nodeId) expect(asked).toEqual([a.nodeId]);
    else expect(asked).toEqual([]); // b owns it and answers itself
    // A node that leaves is removed from the other's ring.
    await b.close();
    nodes.splice(nodes.indexOf(b), 1);
    await until("a's ring drops b", () => a.ring.size === 1);
    expect(a.ring.lookup(g.id)).toBe(a.nodeId);
    expect(await a.groupDirectory.members(g.id)).toEqual(["ann", "ben"]);
    await a.close();
    nodes.splice(nodes.indexOf(a), 1);
  });

  it("repairs a viewer's presence when a change notice was lost (resync)", async () => {
    const a = await mk("pa");
    const b = await mk("pb");
    const carol = socket();
    const carolConn = (await a.gateway.open(carol.transport, "carol"))!;
    await a.gateway.receive(
      carolConn,
      JSON.stringify({ type: "presence.subscribe", users: ["dave"] }),
    );
    await until("carol sees dave offline", () =>
      carol.frames.some((f) => f.type === "presence" && f.user === "dave"),
    );
    // dave's device comes online on b, but the notice is lost: the record is written to
    // Redis with no broadcast, as when pub/sub drops a message.
    await b.presenceStore.write({
      userId: "dave" as UserId,
      deviceId: "d1" as DeviceId,
      nodeId: b.nodeId,
      connected: true,
      lastActive: Date.now(),
    });
    await until("carol sees dave online", () =>
      carol.frames.some((f) => f.type === "presence" && f.user === "dave" && f.status === "online"),
    );
  }, 10_000);

  it("relays across two nodes, comes back after Redis lost its data, and leaves cleanly", async () => {
    const a = await mk("a");
    const b = await mk("b");
    expect(a.nodeId).not.toBe(b.nodeId);
    await until("a sees b", () => a.discovery.members().some((m) => m.nodeId === b.nodeId));
    const alice = socket();
    const bob = socket();
    const aliceConn = (await a.gateway.open(alice.transport, "alice"))!;
    await b.gateway.open(bob.transport, "bob");
    const send = (id: string, text: string) =>
      a.gateway.receive(aliceConn, JSON.stringify({ type: "send", id, to: { user: "bob" }, text }));

    await send("c1", "one");
    await until("bob gets one", () =>
      bob.frames.some((f) => f.type === "message" && f.text === "one"),
    );
    expect((await a.presenceOf("bob" as UserId)).status).toBe("online");

    // Redis loses this cluster's data (as a restart without persistence would): the nodes
    // re-register themselves and their sessions.
    let selfExpired = 0;
    b.on("selfExpired", () => selfExpired++);
    await deleteKeysWithPrefix(await redis.client(), redis.prefix);
    await until("b re-registered", () => selfExpired > 0);
    await until(
      "bob linked again",
      async () => (await b.router.devices.devices("bob" as UserId)).length > 0,
    );
    await until(
      "alice linked again",
      async () => (await a.router.devices.devices("alice" as UserId)).length > 0,
    );
    await send("c2", "two");
    await until("bob gets two", () =>
      bob.frames.some((f) => f.type === "message" && f.text === "two"),
    );

    // A clean leave: b deregisters (a sees it go, nobody claims it as dead) and its users go offline.
    let expired = 0;
    a.on("nodeExpired", () => expired++);
    const seesB = () => a.discovery.members().some((m) => m.nodeId === b.nodeId);
    await until("a sees b again", seesB);
    await b.close();
    await until("b left a's view", () => !seesB());
    await until(
      "bob offline",
      async () => (await a.presenceOf("bob" as UserId)).status === "offline",
    );
    await new Promise((r) => setTimeout(r, 800));
    expect(expired).toBe(0);
  }, 20_000);
});
