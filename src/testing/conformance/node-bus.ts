import assert from "node:assert/strict";
import { type NodeId, nodeId, sessionId } from "../../core/index.js";
import type { BusPacket, NodeBus } from "../../router/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

/** Records packets and lets a case wait for the n-th one without any timer. */
class Collector {
  readonly packets: BusPacket[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  readonly handler = (p: BusPacket): void => {
    this.packets.push(p);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.packets.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  /** Resolves once `n` packets have arrived (the runner's test timeout guards a hang). */
  waitFor(n: number): Promise<void> {
    if (this.packets.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Ops of the control packets received, in order. */
  ops(): string[] {
    return this.packets.map((p) => (p.kind === "control" ? p.op : `frames:${p.frame.type}`));
  }
}

const FROM = nodeId("origin");
const control = (op: string, data: unknown = null): BusPacket => ({
  kind: "control",
  from: FROM,
  op,
  data,
});

/**
 * The behaviour every {@link NodeBus} must have, in one process talking to itself. It never
 * waits on time: to show a packet did NOT arrive it sends a marker after it on the same path
 * and checks that only the marker came.
 */
export function nodeBusConformance(factory: PortFactory<NodeBus>): ConformanceCase[] {
  const with_ = (name: string, body: (bus: NodeBus) => Promise<void>): ConformanceCase => ({
    name: `NodeBus: ${name}`,
    async run() {
      const bus = await factory.create();
      try {
        await body(bus);
      } finally {
        await factory.dispose?.(bus);
      }
    },
  });
  const A: NodeId = nodeId("node-a");
  const B: NodeId = nodeId("node-b");

  return [
    with_("a packet reaches the addressed node's subscriber intact", async (bus) => {
      const got = new Collector();
      await bus.subscribe(A, got.handler);
      const frames: BusPacket = {
        kind: "frames",
        to: [sessionId("s1"), sessionId("s:2 {x}")],
        frame: {
          type: "presence",
          user: "alice 👋",
          status: "offline",
          lastSeen: 1_700_000_000_123,
        },
      };
      const ctl = control("ack", {
        text: 'héllo \u0000 \n "q" 中文 🎉',
        n: -1.5,
        big: 2 ** 53 - 1,
        list: [1, "two", null, { deep: [true, false] }],
        empty: {},
      });
      await bus.publish(A, frames);
      await bus.publish(A, ctl);
      await got.waitFor(2);
      assert.deepEqual(got.packets, [frames, ctl]);
    }),

    with_("a packet reaches only the node it is addressed to", async (bus) => {
      const a = new Collector();
      const b = new Collector();
      await bus.subscribe(A, a.handler);
      await bus.subscribe(B, b.handler);
      await bus.publish(A, control("for-a"));
      await bus.publish(B, control("marker-b"));
      await bus.publish(A, control("marker-a"));
      await a.waitFor(2);
      await b.waitFor(1);
      assert.deepEqual(a.ops(), ["for-a", "marker-a"]);
      assert.deepEqual(b.ops(), ["marker-b"]);
    }),

    with_("every subscriber of a node gets each packet", async (bus) => {
      const one = new Collector();
      const two = new Collector();
      await bus.subscribe(A, one.handler);
      await bus.subscribe(A, two.handler);
      await bus.publish(A, control("x"));
      await one.waitFor(1);
      await two.waitFor(1);
      assert.deepEqual(one.ops(), ["x"]);
      assert.deepEqual(two.ops(), ["x"]);
    }),

    with_("after unsubscribing a handler gets nothing more; others still do", async (bus) => {
      const gone = new Collector();
      const stays = new Collector();
      const off = await bus.subscribe(A, gone.handler);
      await bus.subscribe(A, stays.handler);
      await bus.publish(A, control("before"));
      await gone.waitFor(1);
      await stays.waitFor(1);
      await off();
      await off(); // idempotent
      await bus.publish(A, control("after"));
      await stays.waitFor(2);
      assert.deepEqual(gone.ops(), ["before"]);
      assert.deepEqual(stays.ops(), ["before", "after"]);
    }),

    with_("the last unsubscribe stops delivery; subscribing again resumes it", async (bus) => {
      const first = new Collector();
      const off = await bus.subscribe(A, first.handler);
      await off();
      await bus.publish(A, control("lost"));
      const again = new Collector();
      await bus.subscribe(A, again.handler);
      await bus.publish(A, control("marker"));
      await again.waitFor(1);
      assert.deepEqual(first.ops(), []);
      assert.deepEqual(again.ops(), ["marker"], "packets are not kept for absent subscribers");
    }),

    with_("packets from one publisher to one node keep their order", async (bus) => {
      const got = new Collector();
      await bus.subscribe(A, got.handler);
      const n = 200;
      await Promise.all(Array.from({ length: n }, (_, i) => bus.publish(A, control(String(i)))));
      await got.waitFor(n);
      assert.deepEqual(
        got.ops(),
        Array.from({ length: n }, (_, i) => String(i)),
      );
    }),
  ];
}
