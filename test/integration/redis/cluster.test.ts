/**
 * Every Redis adapter's conformance suite again, on a real 3-master Redis Cluster (three
 * redis-server processes, slots split three ways), through an ioredis `Cluster` client.
 * Proves the hash tags: a script or command whose keys span slots fails with CROSSSLOT.
 */
import { randomBytes } from "node:crypto";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  RedisDeviceRegistry,
  RedisGroupStore,
  RedisMessageStore,
  RedisNodeBus,
  RedisNodeRegistry,
  RedisPresenceStore,
  RedisQueueStore,
  RedisReceiptStore,
  RedisSequenceStore,
  RedisSessionDirectory,
} from "../../../src/adapters/redis/index.js";
import type { NodeRegistry } from "../../../src/discovery/index.js";
import { deviceRegistryConformance } from "../../../src/testing/conformance/device-registry.js";
import { groupStoreConformance } from "../../../src/testing/conformance/group-store.js";
import { messageStoreConformance } from "../../../src/testing/conformance/message-store.js";
import { nodeBusConformance } from "../../../src/testing/conformance/node-bus.js";
import { nodeRegistryConformance } from "../../../src/testing/conformance/node-registry.js";
import { presenceStoreConformance } from "../../../src/testing/conformance/presence-store.js";
import { queueStoreConformance } from "../../../src/testing/conformance/queue-store.js";
import { receiptStoreConformance } from "../../../src/testing/conformance/receipt-store.js";
import { sequenceStoreConformance } from "../../../src/testing/conformance/sequence-store.js";
import { sessionDirectoryConformance } from "../../../src/testing/conformance/session-directory.js";
import type { ConformanceCase } from "../../../src/testing/conformance/types.js";
import { type RedisServer, redisUrl, startRedisServer } from "./redis-helpers.js";

const url = redisUrl();
const SLOTS = [
  [0, 5460],
  [5461, 10922],
  [10923, 16383],
] as const;

async function until(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("Redis Cluster did not come up in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!url)("Redis adapters on a 3-master Redis Cluster", () => {
  const servers: RedisServer[] = [];
  const clients: (Redis | Cluster)[] = [];
  let cluster: Cluster | undefined;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startRedisServer({
          args: [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
          ],
        }),
      );
    }
    const admins = servers.map((s) => new Redis(s.url, { lazyConnect: false }));
    try {
      await Promise.all(
        admins.map((a, i) => a.call("CLUSTER", "ADDSLOTSRANGE", SLOTS[i]![0], SLOTS[i]![1])),
      );
      for (const s of servers.slice(1)) {
        await admins[0]!.call("CLUSTER", "MEET", "127.0.0.1", s.port);
      }
      await until(async () => {
        const infos = await Promise.all(admins.map((a) => a.call("CLUSTER", "INFO")));
        return infos.every((i) => String(i).includes("cluster_state:ok"));
      });
    } finally {
      for (const a of admins) a.disconnect();
    }
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(servers.map((s) => s.dispose()));
  });

  async function client(): Promise<Cluster> {
    if (cluster) return cluster;
    const c = new Cluster(
      servers.map((s) => ({ host: "127.0.0.1", port: s.port })),
      { redisOptions: { maxRetriesPerRequest: 2 } },
    );
    c.on("error", () => {});
    clients.push(c);
    await until(async () => (await c.ping().catch(() => "")) === "PONG");
    cluster = c;
    return c;
  }
  const prefix = () => `rkc-${randomBytes(4).toString("hex")}`;
  const run = (cases: ConformanceCase[]) => {
    for (const c of cases) it(c.name, c.run);
  };

  it("the cluster spreads keys over the three masters", async () => {
    const c = await client();
    expect(c.nodes("master").length).toBe(3);
  });

  describe("SessionDirectory", () =>
    run(
      sessionDirectoryConformance({
        create: async () => new RedisSessionDirectory({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("DeviceRegistry", () =>
    run(
      deviceRegistryConformance({
        create: async () => new RedisDeviceRegistry({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("SequenceStore", () =>
    run(
      sequenceStoreConformance({
        create: async () => new RedisSequenceStore({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("MessageStore", () =>
    run(
      messageStoreConformance({
        create: async (retention) =>
          new RedisMessageStore({ redis: await client(), prefix: prefix(), retention }),
      }),
    ));
  describe("GroupStore", () =>
    run(
      groupStoreConformance({
        create: async () => new RedisGroupStore({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("PresenceStore", () =>
    run(
      presenceStoreConformance({
        create: async () => new RedisPresenceStore({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("ReceiptStore", () =>
    run(
      receiptStoreConformance({
        create: async () => new RedisReceiptStore({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("QueueStore", () =>
    run(
      queueStoreConformance({
        create: async () => new RedisQueueStore({ redis: await client(), prefix: prefix() }),
      }),
    ));
  describe("NodeRegistry", () => {
    const prefixes = new WeakMap<NodeRegistry, string>();
    run(
      nodeRegistryConformance({
        async create({ clock }) {
          const p = prefix();
          const reg = new RedisNodeRegistry({ redis: await client(), prefix: p, clock });
          prefixes.set(reg, p);
          return reg;
        },
        async peer(of, { clock }) {
          return new RedisNodeRegistry({ redis: await client(), prefix: prefixes.get(of)!, clock });
        },
      }),
    );
  });
  describe("NodeBus (sharded pub/sub on a Cluster, so one publisher's packets keep their order)", () =>
    run(
      nodeBusConformance({
        create: async () => new RedisNodeBus({ redis: await client(), prefix: prefix() }),
        dispose: (bus) => bus.close(),
      }),
    ));
});
