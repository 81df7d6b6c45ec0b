import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisQueueStore } from "../../../src/adapters/redis/index.js";
import { RelayQueueStore } from "../../../src/adapters/redis/relay-queue-store.js";
import {
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  isRelayError,
  ManualClock,
  messageId,
  userId,
} from "../../../src/core/index.js";
import { DeliveryQueue, type QueuedMessage } from "../../../src/queue/index.js";
import { queueStoreConformance } from "../../../src/testing/conformance/queue-store.js";
import { connectRedis, redisFixture, redisUrl, startRedisServer } from "./redis-helpers.js";

const url = redisUrl();

function envelope(n: number): Envelope {
  return {
    id: messageId(`m${n}`),
    clientId: clientMessageId(`c${n}`),
    from: userId("alice"),
    fromDevice: deviceId("a1"),
    to: { user: userId("bob") },
    conversation: conversationId("dm:alice:bob"),
    seq: n,
    ts: n,
    text: `hello ${n}`,
    priority: n % 3 === 0 ? "low" : "normal",
  };
}

const queued = (n: number): QueuedMessage => ({
  envelope: envelope(n),
  enqueuedAt: n,
  expiresAt: n + 1000,
});

describe.skipIf(!url)("RedisQueueStore", () => {
  const redis = redisFixture("queue");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of queueStoreConformance({
      create: async () => new RedisQueueStore({ redis: await client(), prefix: redis.subPrefix() }),
    })) {
      it(c.name, c.run);
    }
  });

  it("a node restart loses no accepted message: a new DeliveryQueue recovers and delivers all", async () => {
    const prefix = redis.subPrefix("restart");
    const clock = new ManualClock(0);
    const phone = deviceKey(userId("bob"), deviceId("phone"));
    const laptop = deviceKey(userId("bob"), deviceId("laptop"));

    // Node A accepts 50 messages for two offline devices, gets 10 acked by the phone, dies.
    const a = new DeliveryQueue({
      store: new RedisQueueStore({ redis: await redis.client(), prefix }),
      transmit: () => {},
      clock,
    });
    for (let n = 1; n <= 50; n++) {
      expect(await a.enqueue(envelope(n), [phone, laptop])).toEqual({ ok: true });
    }
    await a.ack(
      phone,
      Array.from({ length: 10 }, (_, i) => messageId(`m${i + 1}`)),
    );
    a.close(); // the process is gone: nothing of A's memory is used below

    // Node B starts on its own connection and recovers from Redis.
    const sent: string[] = [];
    const b = new DeliveryQueue({
      store: new RedisQueueStore({ redis: await redis.client(), prefix }),
      transmit: (device, env) => sent.push(`${device}#${env.id}`),
      clock,
      window: 1000,
    });
    expect(await b.recover({ online: () => true })).toBe(90);
    const at = (d: DeviceKey) =>
      sent.filter((s) => s.startsWith(`${d}#`)).map((s) => s.split("#")[1]);
    expect(at(phone)).toEqual(Array.from({ length: 40 }, (_, i) => `m${i + 11}`));
    expect(at(laptop)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i + 1}`));
    // Dedupe survives too: a retried send of c5 is answered from the record A wrote.
    expect(
      (await b.checkDuplicate(deviceKey(userId("alice"), deviceId("a1")), clientMessageId("c5")))
        ?.messageId,
    ).toBe("m5");
    b.close();
  });

  it("the envelope is stored once and dropped when the last device acks", async () => {
    const c = await client();
    const prefix = redis.subPrefix("refs");
    const s = new RedisQueueStore({ redis: c, prefix });
    const devices = Array.from({ length: 300 }, (_, i) =>
      deviceKey(userId(`u${i}`), deviceId("d")),
    );
    expect(await s.append(queued(1), devices, 10)).toEqual({ ok: true, added: 300 });
    expect(await c.hlen(`{${prefix}:q}:env`)).toBe(1);
    for (const d of devices.slice(0, 299)) await s.remove(d, [messageId("m1")]);
    expect(await c.hlen(`{${prefix}:q}:env`)).toBe(1);
    await s.remove(devices[299]!, [messageId("m1"), messageId("m1")]);
    expect(await c.hlen(`{${prefix}:q}:env`)).toBe(0);
    expect(await s.devices()).toEqual([]);
  });

  it("a 5000-device fan-out is one append, and devices() pages through all of them", async () => {
    const s = new RedisQueueStore({ redis: await client(), prefix: redis.subPrefix("wide") });
    const devices = Array.from({ length: 5000 }, (_, i) =>
      deviceKey(userId(`u${i >> 2}`), deviceId(`d${i & 3}`)),
    );
    expect(await s.append(queued(1), devices, 10, 99)).toEqual({ ok: true, added: 5000 });
    expect(new Set(await s.devices()).size).toBe(5000);
    expect((await s.list(devices[4321]!)).map((m) => m.envelope.id)).toEqual(["m1"]);
  });

  it("concurrent appends from two nodes never exceed the cap, all or nothing", async () => {
    const prefix = redis.subPrefix("cap");
    const a = new RedisQueueStore({ redis: await redis.client(), prefix });
    const b = new RedisQueueStore({ redis: await redis.client(), prefix });
    const phone = deviceKey(userId("bob"), deviceId("phone"));
    const laptop = deviceKey(userId("bob"), deviceId("laptop"));
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, n) => (n % 2 ? a : b).append(queued(n), [phone, laptop], 25)),
    );
    expect(results.filter((r) => r.ok).length).toBe(25);
    expect(await a.count(phone)).toBe(25);
    expect((await b.list(laptop)).map((m) => m.envelope.id)).toEqual(
      (await a.list(phone)).map((m) => m.envelope.id),
    );
  });

  it("expired dedupe records leave Redis by themselves (a TTL of their remaining life)", async () => {
    const c = await client();
    const prefix = redis.subPrefix("sweep");
    const s = new RedisQueueStore({ redis: c, prefix });
    const rec = { messageId: messageId("m"), conversation: conversationId("c"), seq: 1, ts: 1 };
    for (let i = 0; i < 50; i++)
      await s.putSent(
        deviceKey(userId("a"), deviceId("a1")),
        clientMessageId(`c${i}`),
        rec,
        500 + i,
        0,
      );
    await s.putSent(
      deviceKey(userId("a"), deviceId("a1")),
      clientMessageId("late"),
      rec,
      60_000,
      0,
    );
    const keys = async () => {
      let n = 0;
      let cursor = "0";
      do {
        const [next, found] = await c.scan(cursor, "MATCH", `{${prefix}:q}:sent:*`, "COUNT", 1000);
        n += found.length;
        cursor = next;
      } while (cursor !== "0");
      return n;
    };
    expect(await keys()).toBe(51);
    await new Promise((r) => setTimeout(r, 700));
    expect(await keys()).toBe(1);
    // What is live is still decided by the callers' clock, not by Redis time.
    expect(
      await s.getSent(deviceKey(userId("a"), deviceId("a1")), clientMessageId("late"), 59_999),
    ).toEqual(rec);
    expect(
      await s.getSent(deviceKey(userId("a"), deviceId("a1")), clientMessageId("late"), 60_000),
    ).toBeUndefined();
  });

  it("RelayQueueStore: a primed list is read only inside its call; everything else reads Redis", async () => {
    const prefix = redis.subPrefix("relay");
    const inner = new RedisQueueStore({ redis: await client(), prefix });
    const s = new RelayQueueStore(inner);
    const bob = deviceKey(userId("bob"), deviceId("d"));
    expect(await s.append(queued(1), [bob], 10)).toEqual({ ok: true, added: 1 });
    expect(s.appended(messageId("m1"))).toEqual(queued(1));
    expect(s.appended(messageId("m1"))).toBeUndefined();
    const ids = async (p: Promise<readonly QueuedMessage[]>) => (await p).map((m) => m.envelope.id);
    // Inside: what the packet carried (m2 is not in Redis). A later list, even one started
    // from inside after an await, reads Redis.
    let later: Promise<readonly QueuedMessage[]> | undefined;
    const inside = s.primed(bob, [queued(2)], () => {
      const first = s.list(bob);
      later = Promise.resolve().then(() => s.list(bob));
      return first;
    });
    expect(await ids(inside)).toEqual(["m2"]);
    expect(await ids(later!)).toEqual(["m1"]);
    expect(await ids(s.list(bob))).toEqual(["m1"]);
  });

  it("a lost connection gives store_unavailable", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const s = new RedisQueueStore({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await s.devices().catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
  });

  it("with AOF (appendfsync always) a Redis crash (SIGKILL) loses no accepted entry", async () => {
    const server = await startRedisServer({
      args: ["--appendonly", "yes", "--appendfsync", "always"],
    });
    try {
      const c1 = await connectRedis(server.url);
      const s1 = new RedisQueueStore({ redis: c1, prefix: "aof" });
      const phone = deviceKey(userId("bob"), deviceId("phone"));
      for (let n = 1; n <= 100; n++) await s1.append(queued(n), [phone], 1000, 10_000);
      await s1.remove(phone, [messageId("m1")]);
      await server.kill();
      c1.disconnect();
      await server.start();
      const c2 = await connectRedis(server.url);
      const s2 = new RedisQueueStore({ redis: c2, prefix: "aof" });
      expect(await s2.devices()).toEqual([phone]);
      expect((await s2.list(phone)).map((m) => m.envelope.id)).toEqual(
        Array.from({ length: 99 }, (_, i) => `m${i + 2}`),
      );
      expect(
        await s2.getSent(deviceKey(userId("alice"), deviceId("a1")), clientMessageId("c7"), 0),
      ).toMatchObject({
        messageId: "m7",
      });
      c2.disconnect();
    } finally {
      await server.dispose();
    }
  });
});
