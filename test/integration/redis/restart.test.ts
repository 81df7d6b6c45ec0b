import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisNodeBus, RedisSessionDirectory } from "../../../src/adapters/redis/index.js";
import { deviceId, isRelayError, nodeId, sessionId, userId } from "../../../src/core/index.js";
import type { BusPacket } from "../../../src/router/index.js";
import { connectRedis, type RedisServer, redisUrl, startRedisServer } from "./redis-helpers.js";

const url = redisUrl();

const session = (id: string) => ({
  sessionId: sessionId(id),
  userId: userId("alice"),
  deviceId: deviceId(`d-${id}`),
  nodeId: nodeId("n1"),
  connectedAt: 1,
});

/** Waits (without a fixed sleep) until `check` passes, polling on the event loop. */
async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Uses its own redis-server (not the shared one) because it kills and restarts it.
describe.skipIf(!url)("Redis restart (dedicated server)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(() => server?.dispose());

  it("the helper's server answers, dies and comes back on the same port", async () => {
    const c = await connectRedis(server.url);
    expect(await c.ping()).toBe("PONG");
    const port = server.port;
    await server.kill();
    expect(server.running).toBe(false);
    await server.start();
    expect(server.port).toBe(port);
    await eventually(async () => (await c.ping().catch(() => "")) === "PONG");
    c.disconnect();
  });

  it("while Redis is down calls fail with store_unavailable; after restart the same clients carry on", async () => {
    const pub = await connectRedis(server.url, { enableOfflineQueue: false });
    const dir = new RedisSessionDirectory({
      redis: pub,
      prefix: "restart",
      retry: { attempts: 2, minDelayMs: 5 },
    });
    const bus = new RedisNodeBus({
      redis: pub,
      prefix: "restart",
      retry: { attempts: 2, minDelayMs: 5 },
    });
    const got: BusPacket[] = [];
    await bus.subscribe(nodeId("n1"), (p) => got.push(p));
    await dir.register(session("s1"));

    await server.kill();
    const err = await dir.lookup(userId("alice")).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    const perr = await bus
      .publish(nodeId("n1"), { kind: "control", from: nodeId("x"), op: "lost", data: 0 })
      .catch((e: unknown) => e);
    expect(isRelayError(perr, "store_unavailable")).toBe(true);

    await server.start(); // empty: persistence is off, as after a real crash without AOF
    await eventually(async () => (await pub.ping().catch(() => "")) === "PONG");
    await dir.register(session("s2"));
    expect((await dir.lookup(userId("alice"))).map((s) => s.sessionId)).toEqual(["s2"]);
    // The subscriber reconnects and resubscribes by itself (ioredis autoResubscribe).
    await eventually(async () => {
      await bus.publish(nodeId("n1"), { kind: "control", from: nodeId("x"), op: "back", data: 0 });
      return got.length > 0;
    });
    expect(got.every((p) => p.kind === "control" && p.op === "back")).toBe(true);
    await bus.close();
    pub.disconnect();
  });

  it("with the offline queue on, a call made during a short outage completes after restart", async () => {
    const c = await connectRedis(server.url, { maxRetriesPerRequest: 50 });
    const dir = new RedisSessionDirectory({ redis: c, prefix: "queued" });
    await server.kill();
    const pending = dir.register(session("s9"));
    await server.start();
    await pending;
    expect((await dir.lookup(userId("alice"))).map((s) => s.sessionId)).toEqual(["s9"]);
    c.disconnect();
  });
});
