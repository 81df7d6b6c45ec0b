import { describe, expect, it } from "vitest";
import { createSimulation } from "../../src/testing/index.js";

describe("crash and restart with the durable queue", () => {
  it("clients of a crashed node reconnect elsewhere and get everything (cluster queue)", async () => {
    const sim = createSimulation({ seed: "crash-1", nodes: 3 });
    const alice = sim.client("alice", { node: "n1" });
    const carol = sim.client("carol", { node: "n1" });
    const bob = sim.client("bob", { node: "n2" });
    await sim.run(20);
    for (let i = 0; i < 30; i++) {
      sim.at(i * 20, () => alice.send(bob.user, `a${i}`));
      sim.at(i * 20 + 5, () => bob.send(carol.user, `b${i}`));
    }
    sim.at(250, () => sim.crash("n1"));
    await sim.run(2000);
    // failover: n1's clients moved to the next live node
    expect(alice.connectedTo).toBe("n2");
    expect(carol.connectedTo).toBe("n2");
    sim.restart("n1");
    await sim.runUntilQuiet();
    expect(alice.outgoing.every((o) => o.state === "sent")).toBe(true);
    expect(bob.received).toHaveLength(30);
    expect(carol.received).toHaveLength(30);
    const v = sim.check({ bounded: true });
    if (v.length > 0) throw new Error(sim.report(v));
  });

  it("a restarted node recovers its per-node queue from the shared store", async () => {
    const sim = createSimulation({ seed: "crash-2", nodes: 2, outbox: "per-node" });
    const alice = sim.client("alice", { node: "n1" });
    const bob = sim.client("bob", { node: "n1", connect: false });
    await sim.run(20);
    for (let i = 0; i < 5; i++) alice.send(bob.user, `m${i}`);
    await sim.run(100);
    expect(alice.outgoing.every((o) => o.state === "sent")).toBe(true);
    expect(sim.queueStore.size).toBe(5);
    sim.crash("n1");
    await sim.run(100);
    // the schedule died with n1; the entries did not
    expect(sim.queueStore.size).toBe(5);
    sim.restart("n1");
    await sim.run(100);
    expect(sim.node("n1").queue!.depth).toBe(5);
    bob.connect("n1");
    await sim.runUntilQuiet();
    expect(bob.received.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    const v = sim.check({ bounded: true });
    if (v.length > 0) throw new Error(sim.report(v));
  });

  it("sessions of a dead node are dropped after failure detection", async () => {
    const sim = createSimulation({ seed: "crash-3", nodes: 2, failureDetectionMs: 1000 });
    const alice = sim.client("alice", { node: "n1", failover: false });
    sim.client("bob", { node: "n2" });
    await sim.run(50);
    expect(sim.directory.size).toBe(2);
    sim.crash("n1");
    await sim.run(500);
    expect(sim.directory.size).toBe(2);
    await sim.run(600);
    expect(sim.directory.size).toBe(1);
    expect(alice.online).toBe(false);
    sim.restart("n1");
    await sim.runUntilQuiet();
    expect(alice.connectedTo).toBe("n1");
  });

  it("calls a dead node had in flight never touch shared state", async () => {
    const sim = createSimulation({ seed: "crash-4", nodes: 2, clients: { delay: 0 } });
    const alice = sim.client("alice", { node: "n1" });
    const bob = sim.client("bob", { node: "n2" });
    await sim.run(10);
    alice.send(bob.user, "in flight");
    sim.crash("n1"); // the send frame is on the wire to n1
    await sim.run(100);
    expect(sim.queueStore.size).toBe(0);
    await sim.runUntilQuiet();
    // alice resent it to n2 with the same client id: exactly one message
    expect(bob.received).toHaveLength(1);
    expect(alice.outgoing[0]!.attempts).toBe(2);
  });
});
