import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { UserId } from "../../src/core/index.js";
import { createSimulation, type SimClient, type Simulation } from "../../src/testing/index.js";

const seen = (viewer: SimClient, subject: SimClient) => viewer.presence.get(subject.user);

/** Every connected viewer was last shown exactly the shared presence of each subject it watches. */
function expectViewsMatchStore(sim: Simulation): void {
  for (const c of sim.clients) {
    if (!c.online) continue;
    for (const subject of c.subscriptions) {
      const p = sim.presenceOf(subject);
      const got = c.presence.get(subject);
      expect({ viewer: c.key, subject, status: got?.status, lastSeen: got?.lastSeen }).toEqual({
        viewer: c.key,
        subject,
        status: p.status,
        lastSeen: p.lastSeen,
      });
    }
  }
}

describe("built-in presence across nodes", () => {
  it("a viewer on one node sees a subject connect on another", async () => {
    const sim = createSimulation({ seed: "px-1", nodes: 3 });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2", connect: false });
    carol.subscribePresence(["alice"]);
    await sim.runUntilQuiet();
    expect(seen(carol, alice)).toMatchObject({ status: "offline", lastSeen: null });
    const published = sim.bus.stats.published;
    alice.connect();
    await sim.runUntilQuiet();
    expect(seen(carol, alice)).toMatchObject({ status: "online", lastSeen: null });
    // n2 told n1 over the bus
    expect(sim.bus.stats.published).toBeGreaterThan(published);
    expect(sim.node("n2").presence?.status(alice.user).status).toBe("online");
    expect(sim.check()).toEqual([]);
  });

  it("a disconnect shows as offline, last seen = the subject's last activity", async () => {
    const sim = createSimulation({
      seed: "px-2",
      nodes: 2,
      clients: { delay: 10 },
      bus: { delay: 5 },
    });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2" });
    carol.subscribePresence(["alice"]);
    await sim.run(100);
    expect(seen(carol, alice)?.status).toBe("online");
    alice.send(carol.user, "bye"); // reaches n2 at 110: alice's last activity
    await sim.run(50);
    alice.disconnect();
    await sim.runUntilQuiet();
    expect(seen(carol, alice)).toMatchObject({ status: "offline", lastSeen: 110 });
    // announced at once (n2 -> n1 -> carol), not found by the periodic re-read
    expect(seen(carol, alice)!.at).toBeLessThan(500);
    expect(sim.presenceOf("alice")).toEqual({ status: "offline", lastSeen: 110 });
    expect(sim.check()).toEqual([]);
  });

  it("a partition delays convergence; after heal it converges", async () => {
    const sim = createSimulation({ seed: "px-3", nodes: 2, clients: { delay: 5 } });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2" });
    carol.subscribePresence(["alice"]);
    await sim.run(100);
    expect(seen(carol, alice)?.status).toBe("online");
    sim.partition(["n1"], ["n2"]);
    alice.disconnect();
    await sim.run(300);
    // the announcement was lost to the partition: carol's view is stale, and check() says so
    expect(sim.bus.stats.unreachable).toBeGreaterThan(0);
    expect(seen(carol, alice)?.status).toBe("online");
    expect(sim.check().map((v) => v.invariant)).toEqual(["presence"]);
    sim.heal();
    expect(await sim.runUntilQuiet()).toBe(true);
    expect(seen(carol, alice)?.status).toBe("offline");
    expect(sim.check()).toEqual([]);
    expectViewsMatchStore(sim);
  });

  it("a crashed node's devices go offline at failure detection, last seen = the crash", async () => {
    const sim = createSimulation({
      seed: "px-4",
      nodes: 3,
      failureDetectionMs: 1000,
      clients: { delay: 5 },
    });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2", failover: false });
    const bob = sim.client("bob", { node: "n2" }); // fails over to n3
    carol.subscribePresence(["alice", "bob"]);
    await sim.run(100);
    sim.crash("n2");
    await sim.run(500);
    expect(bob.connectedTo).toBe("n3");
    expect(alice.online).toBe(false);
    // nobody knows yet that n2 is dead
    expect(seen(carol, alice)?.status).toBe("online");
    await sim.run(1000);
    expect(seen(carol, alice)).toMatchObject({ status: "offline", lastSeen: 100 });
    // bob's record belongs to n3 now: n2's expiry leaves it alone
    expect(seen(carol, bob)?.status).toBe("online");
    expect(sim.check({ bounded: false })).toEqual([]);
    sim.restart("n2");
    expect(await sim.runUntilQuiet()).toBe(true);
    expect(alice.connectedTo).toBe("n2");
    expect(seen(carol, alice)?.status).toBe("online");
    expect(sim.check()).toEqual([]);
  });

  it("a node restarted before failure detection expires what it owned itself", async () => {
    const sim = createSimulation({ seed: "px-5", nodes: 2, clients: { delay: 5 } });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2", failover: false });
    carol.subscribePresence(["alice"]);
    await sim.run(100);
    sim.crash("n2");
    await sim.run(200);
    expect(sim.presenceOf("alice").status).toBe("online"); // stale: not detected yet
    sim.restart("n2");
    expect(sim.presenceOf("alice")).toEqual({ status: "offline", lastSeen: 100 });
    await sim.runUntilQuiet();
    expect(alice.connectedTo).toBe("n2");
    expect(seen(carol, alice)?.status).toBe("online");
    expect(sim.check()).toEqual([]);
  });

  it("a viewer whose node crashed resubscribes elsewhere and converges", async () => {
    const sim = createSimulation({ seed: "px-6", nodes: 3, failureDetectionMs: 1000 });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2" });
    carol.subscribePresence(["alice"]);
    await sim.run(100);
    sim.crash("n1");
    sim.at(300, () => alice.disconnect());
    expect(await sim.runUntilQuiet()).toBe(true);
    expect(carol.connectedTo).not.toBe("n1");
    expect(seen(carol, alice)?.status).toBe("offline");
    expect(sim.check({ bounded: false })).toEqual([]);
  });

  it("a device switching nodes stays online for its viewers", async () => {
    const sim = createSimulation({ seed: "px-7", nodes: 3 });
    const carol = sim.client("carol", { node: "n1" });
    const alice = sim.client("alice", { node: "n2" });
    const phone = sim.client("alice", { device: "phone", node: "n3", connect: false });
    carol.subscribePresence(["alice"]);
    for (let i = 0; i < 10; i++) sim.at(100 + i * 37, () => alice.connect(`n${(i % 3) + 1}`));
    sim.at(200, () => phone.connect());
    sim.at(400, () => phone.disconnect());
    expect(await sim.runUntilQuiet()).toBe(true);
    expect(seen(carol, alice)?.status).toBe("online");
    expect(sim.check()).toEqual([]);
    alice.disconnect();
    expect(await sim.runUntilQuiet()).toBe(true);
    expect(seen(carol, alice)?.status).toBe("offline");
    expect(sim.check()).toEqual([]);
  });

  it("rejects a bad resync period", () => {
    expect(() => createSimulation({ seed: 1, presence: { resyncMs: 0 } })).toThrow(
      /`presence.resyncMs` to be an integer >= 1/,
    );
  });
});

/** One scheduled action on a client or the cluster. */
const actionArb = fc.record({
  at: fc.integer({ min: 0, max: 4000 }),
  kind: fc.constantFrom(
    "connect",
    "disconnect",
    "disconnect",
    "switch",
    "subscribe",
    "crash",
    "partition",
  ),
  target: fc.nat({ max: 30 }),
  ms: fc.integer({ min: 50, max: 3000 }),
});

const worldArb = fc.record({
  seed: fc.integer(),
  nodes: fc.integer({ min: 1, max: 4 }),
  users: fc.integer({ min: 2, max: 5 }),
  secondDevices: fc.integer({ min: 0, max: 2 }),
  busDrop: fc.constantFrom(0, 0.1, 0.3),
  clientDrop: fc.constantFrom(0, 0.02),
  actions: fc.array(actionArb, { maxLength: 14 }),
});

type World = typeof worldArb extends fc.Arbitrary<infer T> ? T : never;

function build(w: World): Simulation {
  const sim = createSimulation({
    seed: w.seed,
    nodes: w.nodes,
    bus: { drop: w.busDrop, delay: { min: 1, max: 20 } },
    clients: { drop: w.clientDrop },
    failureDetectionMs: 1000,
  });
  for (let i = 0; i < w.users; i++) sim.client(`u${i}`);
  for (let i = 0; i < w.secondDevices; i++) sim.client(`u${i % w.users}`, { device: "d2" });
  // every device watches the next user
  for (const [i, c] of sim.clients.entries()) c.subscribePresence([`u${(i + 1) % w.users}`]);
  for (const a of w.actions) {
    const client = sim.clients[a.target % sim.clients.length]!;
    const node = sim.nodes[a.target % sim.nodes.length]!.id;
    sim.at(a.at, () => {
      switch (a.kind) {
        case "connect":
          client.connect();
          break;
        case "disconnect":
          client.disconnect();
          break;
        case "switch":
          client.connect(sim.nodes[(a.target + 1) % sim.nodes.length]!.id);
          break;
        case "subscribe":
          client.subscribePresence([`u${a.ms % w.users}`]);
          break;
        case "crash":
          sim.crash(node);
          sim.at(a.ms, () => sim.restart(node));
          break;
        case "partition":
          sim.partition(
            [node],
            sim.nodes.filter((n) => n.id !== node).map((n) => n.id),
          );
          sim.at(a.ms, () => sim.heal());
          break;
      }
    });
  }
  return sim;
}

describe("built-in presence property", () => {
  it("after heal and quiet, every connected viewer sees the truth, as the store has it", async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, async (w) => {
        const sim = build(w);
        await sim.run(7500);
        sim.heal();
        for (const n of sim.nodes) sim.restart(n.id);
        expect(await sim.runUntilQuiet()).toBe(true);
        const v = sim.check({ presence: true });
        if (v.length > 0) throw new Error(sim.report(v, 40));
        expectViewsMatchStore(sim);
        // the store agrees with the truth for every user, watched or not
        for (const c of sim.clients) {
          expect([c.user, sim.presenceOf(c.user).status]).toEqual([
            c.user,
            sim.isOnline(c.user) ? "online" : "offline",
          ]);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("the same seed gives the same presence run", async () => {
    const w: World = {
      seed: 99,
      nodes: 3,
      users: 4,
      secondDevices: 1,
      busDrop: 0.1,
      clientDrop: 0.02,
      actions: [
        { at: 100, kind: "switch", target: 1, ms: 100 },
        { at: 300, kind: "crash", target: 2, ms: 1500 },
        { at: 500, kind: "partition", target: 0, ms: 800 },
        { at: 900, kind: "disconnect", target: 3, ms: 100 },
      ],
    };
    const a = build(w);
    const b = build(w);
    await a.runUntilQuiet();
    await b.runUntilQuiet();
    const views = (s: Simulation) => s.clients.map((c) => [...c.presence]);
    expect(views(b)).toEqual(views(a));
    expect(b.traceHash).toBe(a.traceHash);
    expect(a.clients.some((c) => c.presence.size > 0)).toBe(true);
    expect(a.presenceOf("u0" as UserId)).toEqual(b.presenceOf("u0"));
  });
});
