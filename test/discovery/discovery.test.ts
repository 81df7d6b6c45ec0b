import { describe, expect, it } from "vitest";
import { ManualClock, type NodeId, nodeId, RelayError } from "../../src/core/index.js";
import {
  Discovery,
  MemoryNodeRegistry,
  type NodeInfo,
  type NodeRegistry,
} from "../../src/discovery/index.js";

const TTL = 3000;
const EVERY = 1000;

function cluster(names: string[], registry?: NodeRegistry, clock = new ManualClock(50_000)) {
  const reg = registry ?? new MemoryNodeRegistry({ clock });
  const log: string[] = [];
  const handled: string[] = [];
  const nodes = new Map<string, Discovery>();
  for (const name of names) {
    const d = new Discovery({
      registry: reg,
      nodeId: nodeId(name),
      ttlMs: TTL,
      intervalMs: EVERY,
      claimTtlMs: 5000,
      meta: { addr: `ws://${name}` },
      clock,
      onExpired: (n) => {
        handled.push(`${name} handles ${n.nodeId}`);
      },
    });
    d.on("nodeJoined", (n) => log.push(`${name}: +${n.nodeId}`));
    d.on("nodeLeft", (id) => log.push(`${name}: -${id}`));
    d.on("nodeExpired", (id, last) => log.push(`${name}: expired ${id} @${last}`));
    d.on("selfExpired", () => log.push(`${name}: self expired`));
    nodes.set(name, d);
  }
  const all = () => [...nodes.values()];
  /** Moves time in heartbeat-sized steps, letting every node's round finish each time. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += EVERY) {
      clock.advance(Math.min(EVERY, ms - t));
      await Promise.all(all().map((d) => d.idle()));
    }
  };
  return { reg, clock, log, handled, node: (n: string) => nodes.get(n)!, all, run };
}

describe("Discovery", () => {
  it("registers on start and tells each node about the others", async () => {
    const c = cluster(["a", "b"]);
    await c.node("a").start();
    await c.node("b").start();
    expect(c.log).toEqual(["b: +a"]);
    await c.run(EVERY);
    expect(c.log).toEqual(["b: +a", "a: +b"]);
    expect(
      c
        .node("a")
        .members()
        .map((n) => n.nodeId),
    ).toEqual(["b"]);
    expect(c.node("a").members()[0]?.meta).toEqual({ addr: "ws://b" });
    expect((await c.reg.live()).map((n) => n.nodeId)).toEqual(["a", "b"]);
  });

  it("keeps a heartbeating node alive indefinitely", async () => {
    const c = cluster(["a", "b"]);
    for (const d of c.all()) await d.start();
    await c.run(60_000);
    expect((await c.reg.live()).map((n) => n.nodeId)).toEqual(["a", "b"]);
    expect(c.log.filter((l) => l.includes("-") || l.includes("expired"))).toEqual([]);
  });

  it("a crashed node expires: every survivor sees it leave, exactly one handles it", async () => {
    const c = cluster(["a", "b", "c"]);
    for (const d of c.all()) await d.start();
    await c.run(EVERY);
    const lastBeat = c.clock.now();
    await c.node("c").stop({ deregister: false }); // a crash: no goodbye
    c.log.length = 0;
    await c.run(TTL + 2 * EVERY);
    expect(c.log.filter((l) => l.endsWith("-c")).sort()).toEqual(["a: -c", "b: -c"]);
    const expired = c.log.filter((l) => l.includes("expired"));
    expect(expired).toHaveLength(1);
    expect(expired[0]).toMatch(new RegExp(`^(a|b): expired c @${lastBeat}$`));
    expect(c.handled).toHaveLength(1);
    // Confirmed: nobody handles it again, even long after the claim lease.
    await c.run(20_000);
    expect(c.handled).toHaveLength(1);
    expect(await c.reg.claimExpired()).toEqual([]);
  });

  it("a node that stops cleanly leaves without an expiry", async () => {
    const c = cluster(["a", "b"]);
    for (const d of c.all()) await d.start();
    await c.run(EVERY);
    await c.node("b").stop();
    await c.run(TTL * 3);
    expect(c.log).toEqual(["b: +a", "a: +b", "a: -b"]);
    expect(c.handled).toEqual([]);
  });

  it("a failed cleanup is retried after the claim lease", async () => {
    const clock = new ManualClock(0);
    const reg = new MemoryNodeRegistry({ clock });
    let fail = true;
    const calls: NodeId[] = [];
    const errors: RelayError[] = [];
    const a = new Discovery({
      registry: reg,
      nodeId: nodeId("a"),
      ttlMs: TTL,
      intervalMs: EVERY,
      claimTtlMs: 2000,
      clock,
      onExpired: async (n: NodeInfo) => {
        calls.push(n.nodeId);
        if (fail) throw new Error("redelivery failed");
      },
    });
    a.on("error", (e) => errors.push(e));
    await reg.register(nodeId("dead"), { ttlMs: 100 });
    await a.start();
    clock.advance(EVERY);
    await a.idle();
    expect(calls).toEqual(["dead"]);
    expect(errors.map((e) => e.code)).toEqual(["internal"]);
    fail = false;
    for (let i = 0; i < 4; i++) {
      clock.advance(EVERY);
      await a.idle();
    }
    expect(calls).toEqual(["dead", "dead"]);
    clock.advance(10_000);
    await a.idle();
    expect(calls).toEqual(["dead", "dead"]);
  });

  it("a node declared dead behind its back registers again and says so", async () => {
    const c = cluster(["a"]);
    await c.node("a").start();
    await c.reg.deregister(nodeId("a"));
    await c.run(EVERY);
    expect(c.log).toEqual(["a: self expired"]);
    expect((await c.reg.live()).map((n) => n.nodeId)).toEqual(["a"]);
  });

  it("registry failures become error events and the next round carries on", async () => {
    const clock = new ManualClock(0);
    const inner = new MemoryNodeRegistry({ clock });
    let down = false;
    const flaky: NodeRegistry = {
      register: (id, o) => inner.register(id, o),
      heartbeat: async (id) => {
        if (down) throw new RelayError("store_unavailable", "redis down");
        return inner.heartbeat(id);
      },
      deregister: (id) => inner.deregister(id),
      live: () => inner.live(),
      claimExpired: (o) => inner.claimExpired(o),
      confirmExpired: (id) => inner.confirmExpired(id),
    };
    const d = new Discovery({
      registry: flaky,
      nodeId: nodeId("a"),
      ttlMs: TTL,
      intervalMs: EVERY,
      clock,
    });
    const errors: string[] = [];
    d.on("error", (e) => errors.push(e.code));
    await d.start();
    down = true;
    clock.advance(EVERY);
    await d.idle();
    down = false;
    clock.advance(EVERY);
    await d.idle();
    expect(errors).toEqual(["store_unavailable"]);
    expect((await inner.live()).map((n) => n.lastHeartbeat)).toEqual([2 * EVERY]);
  });

  it("stop clears the timer", async () => {
    const clock = new ManualClock(0);
    const d = new Discovery({
      registry: new MemoryNodeRegistry({ clock }),
      nodeId: nodeId("a"),
      clock,
    });
    await d.start();
    expect(clock.pending).toBe(1);
    await d.stop();
    expect(clock.pending).toBe(0);
    expect(d.started).toBe(false);
  });

  it("rejects bad options with invalid_option", () => {
    const registry = new MemoryNodeRegistry();
    const bad = [
      { registry, nodeId: nodeId("a"), ttlMs: 1000, intervalMs: 1000 },
      { registry, nodeId: nodeId("a"), ttlMs: 0 },
      { registry, nodeId: nodeId("") },
      { registry: {} as NodeRegistry, nodeId: nodeId("a") },
    ];
    for (const o of bad) {
      expect(() => new Discovery(o)).toThrow(expect.objectContaining({ code: "invalid_option" }));
    }
  });
});
