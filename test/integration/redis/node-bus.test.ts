import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import {
  decodeBusPacket,
  encodeBusPacket,
  RedisNodeBus,
} from "../../../src/adapters/redis/index.js";
import { isRelayError, nodeId, type RelayError } from "../../../src/core/index.js";
import type { BusPacket } from "../../../src/router/index.js";
import { nodeBusConformance } from "../../../src/testing/conformance/node-bus.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

function waitFor<T>(list: T[], n: number): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => (list.length >= n ? resolve() : setImmediate(poll));
    poll();
  });
}

describe("NodeBus wire encoding", () => {
  it("is a version byte then UTF-8 JSON, and round-trips", () => {
    const p: BusPacket = { kind: "control", from: nodeId("n"), op: "x", data: { s: "é🎉" } };
    const b = encodeBusPacket(p);
    expect(b[0]).toBe(1);
    expect(JSON.parse(b.subarray(1).toString("utf8"))).toEqual(p);
    expect(decodeBusPacket(b)).toEqual(p);
  });

  it("rejects unknown formats and non-packets with bad_json", () => {
    const bad = [
      Buffer.from([2, 123, 125]),
      Buffer.from([1, 123]),
      Buffer.from([1, ...Buffer.from('{"kind":"x"}')]),
    ];
    for (const b of bad)
      expect(() => decodeBusPacket(b)).toThrow(expect.objectContaining({ code: "bad_json" }));
  });
});

describe.skipIf(!url)("RedisNodeBus", () => {
  const redis = redisFixture("bus");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of nodeBusConformance({
      create: async () => new RedisNodeBus({ redis: await client(), prefix: redis.subPrefix() }),
      dispose: (bus) => bus.close(),
    })) {
      it(c.name, c.run);
    }
  });

  it("carries packets between two buses on separate connections (two nodes)", async () => {
    const prefix = redis.subPrefix("nodes");
    const n1 = new RedisNodeBus({ redis: await redis.client(), prefix });
    const n2 = new RedisNodeBus({ redis: await redis.client(), prefix });
    const at1: BusPacket[] = [];
    const at2: BusPacket[] = [];
    await n1.subscribe(nodeId("n1"), (p) => at1.push(p));
    await n2.subscribe(nodeId("n2"), (p) => at2.push(p));
    const ping: BusPacket = { kind: "control", from: nodeId("n1"), op: "ping", data: 1 };
    const pong: BusPacket = { kind: "control", from: nodeId("n2"), op: "pong", data: 2 };
    await n1.publish(nodeId("n2"), ping);
    await n2.publish(nodeId("n1"), pong);
    await waitFor(at1, 1);
    await waitFor(at2, 1);
    expect(at1).toEqual([pong]);
    expect(at2).toEqual([ping]);
    await n1.close();
    await n2.close();
  });

  it("drops undecodable packets, reporting them, and survives throwing handlers", async () => {
    const prefix = redis.subPrefix("junk");
    const errors: RelayError[] = [];
    const bus = new RedisNodeBus({ redis: await client(), prefix, onError: (e) => errors.push(e) });
    const got: BusPacket[] = [];
    await bus.subscribe(nodeId("n1"), () => {
      throw new Error("handler bug");
    });
    await bus.subscribe(nodeId("n1"), (p) => got.push(p));
    await (await client()).publish(bus.channelOf(nodeId("n1")), Buffer.from([9, 9, 9]));
    await bus.publish(nodeId("n1"), { kind: "control", from: nodeId("x"), op: "ok", data: null });
    await waitFor(got, 1);
    expect(got.map((p) => (p.kind === "control" ? p.op : ""))).toEqual(["ok"]);
    expect(errors.map((e) => e.code)).toEqual(["bad_json", "internal"]);
    await bus.close();
  });

  it("publish after close rejects with closed", async () => {
    const bus = new RedisNodeBus({ redis: await client(), prefix: redis.subPrefix("closed") });
    await bus.close();
    const err = await bus
      .publish(nodeId("n1"), { kind: "control", from: nodeId("x"), op: "x", data: 0 })
      .catch((e) => e);
    expect(isRelayError(err, "closed")).toBe(true);
  });

  it("publishing on a dead connection gives store_unavailable, not a crash", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const bus = new RedisNodeBus({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await bus
      .publish(nodeId("n1"), { kind: "control", from: nodeId("x"), op: "x", data: 0 })
      .catch((e) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    expect((err as Error).cause).toBeInstanceOf(Error);
    await bus.close();
  });
});
