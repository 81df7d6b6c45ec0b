import assert from "node:assert/strict";
import { type Clock, ManualClock, type NodeId, nodeId } from "../../core/index.js";
import type { NodeInfo, NodeRegistry } from "../../discovery/index.js";
import type { ConformanceCase } from "./types.js";

/**
 * Builds registries for {@link nodeRegistryConformance}. The suite supplies the clock (a
 * ManualClock) so it can move time; a registry must take all its times from it.
 */
export interface NodeRegistryFactory {
  /** A fresh, empty registry reading time from `clock`. */
  create(options: { clock: Clock }): Promise<NodeRegistry>;
  /**
   * Another handle on the same backing store as `registry` (what a second node would
   * hold). Defaults to `registry` itself, which is right for in-process registries.
   */
  peer?(registry: NodeRegistry, options: { clock: Clock }): Promise<NodeRegistry>;
  /** Frees a registry made by `create` (and its peers). */
  dispose?(registry: NodeRegistry): Promise<void>;
}

const ids = (list: readonly NodeInfo[]): string[] => list.map((n) => n.nodeId);

/** The behaviour every {@link NodeRegistry} must have, under a virtual clock. */
export function nodeRegistryConformance(factory: NodeRegistryFactory): ConformanceCase[] {
  const with_ = (
    name: string,
    body: (
      reg: NodeRegistry,
      clock: ManualClock,
      peer: () => Promise<NodeRegistry>,
    ) => Promise<void>,
  ): ConformanceCase => ({
    name: `NodeRegistry: ${name}`,
    async run() {
      const clock = new ManualClock(1_000_000);
      const reg = await factory.create({ clock });
      const peer = async () => (factory.peer ? factory.peer(reg, { clock }) : reg);
      try {
        await body(reg, clock, peer);
      } finally {
        await factory.dispose?.(reg);
      }
    },
  });
  const n1: NodeId = nodeId("n1");
  const n2: NodeId = nodeId("n2");
  const n3: NodeId = nodeId("n3");

  return [
    with_("a registered node is live with its meta, TTL and times", async (reg, clock) => {
      assert.deepEqual([...(await reg.live())], []);
      await reg.register(n1, { ttlMs: 1000, meta: { addr: "ws://127.0.0.1:1", zone: "a" } });
      const live = await reg.live();
      assert.deepEqual(live, [
        {
          nodeId: n1,
          meta: { addr: "ws://127.0.0.1:1", zone: "a" },
          ttlMs: 1000,
          registeredAt: clock.now(),
          lastHeartbeat: clock.now(),
        },
      ]);
    }),

    with_("live lists every live node sorted by id", async (reg) => {
      await reg.register(n3, { ttlMs: 1000 });
      await reg.register(n1, { ttlMs: 1000 });
      await reg.register(n2, { ttlMs: 1000 });
      assert.deepEqual(ids(await reg.live()), ["n1", "n2", "n3"]);
      assert.deepEqual((await reg.live())[0]!.meta, {});
    }),

    with_("a node is live through its deadline and not after", async (reg, clock) => {
      await reg.register(n1, { ttlMs: 1000 });
      clock.advance(1000);
      assert.deepEqual(ids(await reg.live()), ["n1"]);
      assert.deepEqual([...(await reg.claimExpired())], [], "not expired at the deadline itself");
      clock.advance(1);
      assert.deepEqual(ids(await reg.live()), []);
    }),

    with_("heartbeats extend life by the TTL and record the time", async (reg, clock) => {
      const t0 = clock.now();
      await reg.register(n1, { ttlMs: 1000 });
      clock.advance(800);
      assert.equal(await reg.heartbeat(n1), true);
      clock.advance(800);
      const [info] = await reg.live();
      assert.equal(info?.lastHeartbeat, t0 + 800);
      assert.equal(info?.registeredAt, t0);
      clock.advance(201);
      assert.deepEqual(ids(await reg.live()), []);
    }),

    with_("heartbeat of an unknown node is refused", async (reg) => {
      assert.equal(await reg.heartbeat(nodeId("ghost")), false);
      assert.deepEqual(ids(await reg.live()), []);
    }),

    with_("an expired node is claimed once, with its last heartbeat", async (reg, clock) => {
      await reg.register(n1, { ttlMs: 1000 });
      await reg.register(n2, { ttlMs: 5000 });
      clock.advance(300);
      await reg.heartbeat(n1);
      const lastHb = clock.now();
      clock.advance(1001);
      const claimed = await reg.claimExpired();
      assert.deepEqual(ids(claimed), ["n1"]);
      assert.equal(claimed[0]!.lastHeartbeat, lastHb);
      assert.equal(claimed[0]!.ttlMs, 1000);
      assert.deepEqual(
        [...(await reg.claimExpired())],
        [],
        "a claimed death is not handed out twice",
      );
      assert.deepEqual(ids(await reg.live()), ["n2"]);
      assert.equal(await reg.heartbeat(n1), false, "a claimed node must register again");
    }),

    with_(
      "concurrent claimers, on separate handles, share out each death exactly once",
      async (reg, clock, peer) => {
        const handles = [reg, await peer(), await peer(), await peer()];
        for (let i = 0; i < 6; i++) await reg.register(nodeId(`d${i}`), { ttlMs: 100 });
        await reg.register(n1, { ttlMs: 10_000 });
        clock.advance(101);
        const results = await Promise.all([...handles, ...handles].map((h) => h.claimExpired()));
        const all = results.flatMap(ids).sort();
        assert.deepEqual(all, ["d0", "d1", "d2", "d3", "d4", "d5"]);
      },
    ),

    with_("a peer handle sees the same nodes and heartbeats", async (reg, clock, peer) => {
      const other = await peer();
      await reg.register(n1, { ttlMs: 1000 });
      assert.deepEqual(ids(await other.live()), ["n1"]);
      clock.advance(900);
      assert.equal(await other.heartbeat(n1), true);
      clock.advance(900);
      assert.deepEqual(ids(await reg.live()), ["n1"]);
    }),

    with_(
      "an unconfirmed claim lapses after its lease and is handed out again",
      async (reg, clock) => {
        await reg.register(n1, { ttlMs: 100 });
        const hb = clock.now();
        clock.advance(101);
        assert.deepEqual(ids(await reg.claimExpired({ claimTtlMs: 500 })), ["n1"]);
        clock.advance(500);
        assert.deepEqual([...(await reg.claimExpired({ claimTtlMs: 500 }))], []);
        clock.advance(1);
        const again = await reg.claimExpired({ claimTtlMs: 500 });
        assert.deepEqual(ids(again), ["n1"]);
        assert.equal(again[0]!.lastHeartbeat, hb);
      },
    ),

    with_("a confirmed death is never handed out again", async (reg, clock) => {
      await reg.register(n1, { ttlMs: 100 });
      clock.advance(101);
      assert.deepEqual(ids(await reg.claimExpired({ claimTtlMs: 50 })), ["n1"]);
      await reg.confirmExpired(n1);
      await reg.confirmExpired(n1);
      await reg.confirmExpired(nodeId("ghost"));
      clock.advance(10_000);
      assert.deepEqual([...(await reg.claimExpired())], []);
      assert.deepEqual(ids(await reg.live()), []);
    }),

    with_("a node that deregisters leaves at once and never expires", async (reg, clock) => {
      await reg.register(n1, { ttlMs: 100 });
      await reg.register(n2, { ttlMs: 100 });
      assert.equal(await reg.deregister(n1), true);
      assert.equal(await reg.deregister(n1), false);
      assert.deepEqual(ids(await reg.live()), ["n2"]);
      assert.equal(await reg.heartbeat(n1), false);
      clock.advance(1000);
      assert.deepEqual(ids(await reg.claimExpired()), ["n2"]);
    }),

    with_("a late heartbeat before anyone claims the node revives it", async (reg, clock) => {
      await reg.register(n1, { ttlMs: 100 });
      clock.advance(150);
      assert.deepEqual(ids(await reg.live()), []);
      assert.equal(await reg.heartbeat(n1), true);
      assert.deepEqual(ids(await reg.live()), ["n1"]);
      assert.deepEqual([...(await reg.claimExpired())], []);
    }),

    with_("a claimed node may register again and is live", async (reg, clock) => {
      await reg.register(n1, { ttlMs: 100, meta: { v: "1" } });
      clock.advance(101);
      await reg.claimExpired();
      await reg.register(n1, { ttlMs: 100, meta: { v: "2" } });
      const [info] = await reg.live();
      assert.equal(info?.meta.v, "2");
      assert.equal(info?.registeredAt, clock.now());
      assert.equal(await reg.heartbeat(n1), true);
    }),

    with_("claimExpired honours its limit", async (reg, clock) => {
      for (let i = 0; i < 5; i++) await reg.register(nodeId(`d${i}`), { ttlMs: 10 });
      clock.advance(11);
      const first = await reg.claimExpired({ limit: 2 });
      assert.equal(first.length, 2);
      const rest = await reg.claimExpired({ limit: 10 });
      assert.deepEqual([...ids(first), ...ids(rest)].sort(), ["d0", "d1", "d2", "d3", "d4"]);
    }),
  ];
}
