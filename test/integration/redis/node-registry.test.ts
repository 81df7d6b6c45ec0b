import type { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisNodeRegistry } from "../../../src/adapters/redis/index.js";
import { isRelayError, ManualClock, nodeId } from "../../../src/core/index.js";
import { Discovery, type NodeRegistry } from "../../../src/discovery/index.js";
import { nodeRegistryConformance } from "../../../src/testing/conformance/node-registry.js";
import { redisFixture, redisUrl } from "./redis-helpers.js";

const url = redisUrl();

describe.skipIf(!url)("RedisNodeRegistry", () => {
  const redis = redisFixture("registry");
  let shared: Redis | undefined;
  const client = async () => (shared ??= await redis.client());
  const prefixes = new WeakMap<NodeRegistry, string>();
  afterAll(() => redis.close());

  describe("conformance", () => {
    for (const c of nodeRegistryConformance({
      async create({ clock }) {
        const prefix = redis.subPrefix();
        const reg = new RedisNodeRegistry({ redis: await client(), prefix, clock });
        prefixes.set(reg, prefix);
        return reg;
      },
      // Another node: its own connection, same keys.
      async peer(of, { clock }) {
        return new RedisNodeRegistry({
          redis: await redis.client(),
          prefix: prefixes.get(of)!,
          clock,
        });
      },
    })) {
      it(c.name, c.run);
    }
  });

  it("three nodes on separate connections: one crashes, exactly one survivor handles it", async () => {
    const clock = new ManualClock(1_000_000);
    const prefix = redis.subPrefix("trio");
    const handled: string[] = [];
    const left: string[] = [];
    const nodes = await Promise.all(
      ["a", "b", "c"].map(async (name) => {
        const d = new Discovery({
          registry: new RedisNodeRegistry({ redis: await redis.client(), prefix, clock }),
          nodeId: nodeId(name),
          ttlMs: 3000,
          intervalMs: 1000,
          clock,
          onExpired: (n) => {
            handled.push(`${name}:${n.nodeId}@${n.lastHeartbeat}`);
          },
        });
        d.on("nodeLeft", (id) => left.push(`${name}:${id}`));
        await d.start();
        return d;
      }),
    );
    const step = async () => {
      clock.advance(1000);
      await Promise.all(nodes.map((d) => d.idle()));
    };
    await step();
    expect(nodes[0]!.members().map((n) => n.nodeId)).toEqual(["b", "c"]);
    const lastBeat = clock.now();
    await nodes[2]!.stop({ deregister: false });
    for (let i = 0; i < 6; i++) await step();
    expect(left.sort()).toEqual(["a:c", "b:c"]);
    expect(handled).toHaveLength(1);
    expect(handled[0]).toMatch(new RegExp(`^(a|b):c@${lastBeat}$`));
    for (const d of nodes) await d.stop();
  });

  it("with the system clock and a short TTL, a crash is noticed in real time", async () => {
    const prefix = redis.subPrefix("realtime");
    const make = async (name: string) =>
      new Discovery({
        registry: new RedisNodeRegistry({ redis: await redis.client(), prefix }),
        nodeId: nodeId(name),
        ttlMs: 300,
        intervalMs: 50,
      });
    const a = await make("a");
    const b = await make("b");
    await a.start();
    await b.start();
    const expired = new Promise<[string, number]>((resolve) =>
      a.on("nodeExpired", (id, t) => resolve([id, t])),
    );
    const crashedAt = Date.now();
    await b.stop({ deregister: false });
    const [id, last] = await expired;
    expect(id).toBe("b");
    expect(last).toBeLessThanOrEqual(crashedAt);
    expect(Date.now() - crashedAt).toBeGreaterThanOrEqual(250);
    await a.stop();
  });

  it("a lost connection gives store_unavailable, not a crash", async () => {
    const c = await redis.client({ enableOfflineQueue: false, retryStrategy: () => null });
    const reg = new RedisNodeRegistry({
      redis: c,
      prefix: redis.subPrefix("dead"),
      retry: { minDelayMs: 1 },
    });
    c.disconnect();
    const err = await reg.heartbeat(nodeId("a")).catch((e: unknown) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
  });
});
