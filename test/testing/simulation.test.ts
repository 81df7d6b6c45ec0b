import { describe, expect, it } from "vitest";
import type { UserId } from "../../src/core/index.js";
import {
  createSimulation,
  receivedIds,
  type SimulationOptions,
  scheduleTraffic,
} from "../../src/testing/index.js";

/** A small busy world: 6 users (two with a second device), 80 messages over 2 s. */
function world(options: Partial<SimulationOptions> & { seed: number | string }) {
  const sim = createSimulation({ nodes: 3, ...options });
  for (let i = 0; i < 6; i++) sim.client(`u${i}`);
  sim.client("u0", { device: "d2" });
  sim.client("u1", { device: "d2" });
  scheduleTraffic(sim, { messages: 80, spanMs: 2000 });
  return sim;
}

function expectClean(sim: ReturnType<typeof createSimulation>, ignore: string[] = []): void {
  const v = sim.check({ bounded: true }).filter((x) => !ignore.includes(x.invariant));
  if (v.length > 0) throw new Error(sim.report(v));
}

describe("determinism", () => {
  const faulty = (seed: number | string) => {
    const sim = world({
      seed,
      bus: { drop: 0.1, duplicate: 0.1, reorder: 0.1, delay: { mean: 10 } },
      clients: { drop: 0.02 },
    });
    sim.at(500, () => sim.crash("n2"));
    sim.at(1500, () => sim.restart("n2"));
    sim.at(700, () => sim.partition(["n1"], ["n3"]));
    sim.at(1200, () => sim.heal());
    for (const [i, c] of sim.clients.entries()) c.subscribePresence([`u${(i + 1) % 6}`, "u5"]);
    sim.at(900, () => sim.clients[5]!.disconnect());
    return sim;
  };

  it("the same seed gives the same run, event for event", async () => {
    const a = faulty(7);
    const b = faulty(7);
    await a.runUntilQuiet();
    await b.runUntilQuiet();
    expect(a.traceCount).toBeGreaterThan(100);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.trace()).toBe(a.trace());
    expect(b.clock.now()).toBe(a.clock.now());
    expect(b.clients.map(receivedIds)).toEqual(a.clients.map(receivedIds));
    expect(b.bus.stats).toEqual(a.bus.stats);
    const presence = (s: typeof a) => s.clients.map((c) => [...c.presence]);
    expect(presence(b)).toEqual(presence(a));
    expect(a.clients[0]!.presence.get("u5" as UserId)?.status).toBe("offline");
  });

  it("a different seed gives a different run", async () => {
    const a = faulty(7);
    const b = faulty(8);
    await a.runUntilQuiet();
    await b.runUntilQuiet();
    expect(b.traceHash).not.toBe(a.traceHash);
  });

  it("prints the seed with the trace and the violations", async () => {
    const sim = world({ seed: "print-me" });
    await sim.runUntilQuiet();
    expect(sim.trace(5)).toMatch(/^seed="print-me" hash=[0-9a-f]{8}\n/);
    expect(sim.trace(5).split("\n")).toHaveLength(6);
    const report = sim.report([{ invariant: "no-loss", message: "example" }]);
    expect(report).toContain('seed="print-me"');
    expect(report).toContain("[no-loss] example");
  });
});

describe("a fault-free cluster", () => {
  it("delivers every message to every device once, in order, and goes back to empty", async () => {
    const sim = world({ seed: 1 });
    expect(await sim.runUntilQuiet()).toBe(true);
    const sent = sim.sentMessages();
    expect(sent).toHaveLength(80);
    const owed = sent.reduce((n, m) => n + m.recipients.length, 0);
    expect(sim.clients.reduce((n, c) => n + c.received.length, 0)).toBe(owed);
    expectClean(sim);
    expect(Object.values(sim.sizes()).every((s) => s === 0)).toBe(true);
  });
});

describe("faults", () => {
  it("bus drop: lost packets are redelivered by the queue", async () => {
    const sim = world({ seed: 2, bus: { drop: 0.3 } });
    expect(await sim.runUntilQuiet()).toBe(true);
    expect(sim.bus.stats.dropped).toBeGreaterThan(10);
    expectClean(sim, ["fifo"]);
  });

  it("bus duplicate: clients drop the copies", async () => {
    const sim = world({ seed: 3, bus: { duplicate: 0.5 } });
    await sim.runUntilQuiet();
    expect(sim.bus.stats.duplicated).toBeGreaterThan(10);
    expect(sim.clients.reduce((n, c) => n + c.duplicates, 0)).toBeGreaterThan(0);
    expectClean(sim);
  });

  it("bus reorder: held-back packets are overtaken, nothing is lost", async () => {
    const sim = world({ seed: 4, bus: { reorder: 0.5, reorderMs: 200 } });
    await sim.runUntilQuiet();
    expect(sim.bus.stats.reordered).toBeGreaterThan(10);
    expectClean(sim, ["fifo"]);
  });

  it("delay: a fixed per-link delay adds up along the path", async () => {
    const sim = createSimulation({ seed: 5, bus: { delay: 100 }, clients: { delay: 10 } });
    const alice = sim.client("alice", { node: "n1" });
    const bob = sim.client("bob", { node: "n2" });
    await sim.run(50);
    const t0 = sim.clock.now();
    alice.send(bob.user, "hi");
    await sim.runUntilQuiet();
    // client -> n1 (10) -> bus to n2 (100) -> bob (10)
    expect(bob.received[0]!.at - t0).toBe(120);
    // the `sent` tick comes straight back from n1
    expect(alice.receipts.find((r) => r.status === "sent")).toBeDefined();
    // bob's delivered ack: bob -> n2 (10) -> bus to n1 (100) -> alice (10)
    expect(alice.outgoing[0]!.state).toBe("sent");
  });

  it("delay: an exponential delay spreads arrivals", async () => {
    const sim = createSimulation({ seed: 6, bus: { delay: { mean: 50 } }, clients: { delay: 0 } });
    const alice = sim.client("alice", { node: "n1" });
    const bob = sim.client("bob", { node: "n2" });
    await sim.run(10);
    for (let i = 0; i < 30; i++) sim.at(i * 200, () => alice.send(bob.user, `m${i}`));
    await sim.runUntilQuiet();
    const lags = bob.received.map((r, i) => r.at - 10 - i * 200);
    expect(new Set(lags).size).toBeGreaterThan(10);
    expect(Math.max(...lags)).toBeGreaterThan(50);
    expectClean(sim);
  });

  it("partition: messages wait out a partition and arrive after heal", async () => {
    const sim = createSimulation({ seed: 7 });
    const alice = sim.client("alice", { node: "n1" });
    const bob = sim.client("bob", { node: "n2" });
    await sim.run(20);
    sim.partition(["n1"], ["n2", "n3"]);
    alice.send(bob.user, "across");
    await sim.run(2000);
    expect(bob.received).toHaveLength(0);
    expect(sim.bus.stats.unreachable).toBeGreaterThan(0);
    expect(sim.bus.canReach("n1" as never, "n2" as never)).toBe(false);
    sim.heal();
    await sim.runUntilQuiet();
    expect(bob.received.map((r) => r.id)).toEqual([alice.outgoing[0]!.id]);
    expectClean(sim);
  });

  it("client link drop: the connection breaks, the client reconnects and resends with the same id", async () => {
    const sim = world({ seed: 8, clients: { drop: 0.05 } });
    await sim.runUntilQuiet();
    expect(sim.clients.some((c) => c.connects > 1)).toBe(true);
    const resent = sim.clients.flatMap((c) => c.outgoing).filter((o) => o.attempts > 1);
    expect(resent.length).toBeGreaterThan(0);
    // a resend never makes a second message: one server id per client id
    const ids = sim.sentMessages().map((m) => m.id);
    expect(new Set(ids).size).toBe(ids.length);
    expectClean(sim);
  });

  it("crash and restart: clients fail over, the restarted node serves again", async () => {
    const sim = world({ seed: 9 });
    sim.at(400, () => sim.crash("n1"));
    sim.at(3000, () => sim.restart("n1"));
    await sim.run(1000);
    expect(sim.node("n1").up).toBe(false);
    expect(sim.clients.every((c) => c.connectedTo !== "n1")).toBe(true);
    await sim.runUntilQuiet();
    expect(sim.node("n1").up).toBe(true);
    expect(sim.node("n1").incarnation).toBe(2);
    expectClean(sim);
  });
});

describe("clients", () => {
  it("offline devices get what they missed when they come back, in order", async () => {
    const sim = createSimulation({ seed: 10 });
    const alice = sim.client("alice");
    const bob = sim.client("bob");
    await sim.run(20);
    bob.disconnect();
    await sim.run(20);
    for (let i = 0; i < 5; i++) alice.send(bob.user, `m${i}`);
    await sim.runUntilQuiet();
    expect(bob.received).toHaveLength(0);
    expect(sim.check({ bounded: false })).toEqual([]);
    bob.connect();
    await sim.runUntilQuiet();
    expect(bob.received.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5]);
    expectClean(sim);
  });

  it("switching node mid-conversation loses nothing", async () => {
    const sim = createSimulation({ seed: 11 });
    const alice = sim.client("alice", { node: "n1" });
    const bob = sim.client("bob", { node: "n2" });
    for (let i = 0; i < 20; i++) sim.at(10 + i * 30, () => alice.send(bob.user, `m${i}`));
    sim.at(200, () => bob.connect("n3"));
    await sim.runUntilQuiet();
    expect(bob.connectedTo).toBe("n3");
    expect(bob.received).toHaveLength(20);
    expectClean(sim);
  });

  it("manual acks: unacked messages are redelivered until acked", async () => {
    const sim = createSimulation({ seed: 12 });
    const alice = sim.client("alice");
    const bob = sim.client("bob", { ack: "manual" });
    await sim.run(20);
    alice.send(bob.user, "ack me");
    await sim.run(5000);
    expect(bob.received).toHaveLength(1);
    expect(bob.duplicates).toBeGreaterThan(0);
    expect(bob.unacked).toHaveLength(1);
    bob.ackNow();
    await sim.runUntilQuiet();
    expect(bob.unacked).toHaveLength(0);
    expectClean(sim);
  });

  it("auto-read: the sender gets delivered then read from each device", async () => {
    const sim = createSimulation({ seed: 13 });
    const alice = sim.client("alice");
    const bob = sim.client("bob", { autoRead: true });
    await sim.run(20);
    alice.send(bob.user, "read me");
    await sim.runUntilQuiet();
    const statuses = alice.receipts.map((r) => r.status);
    expect(statuses).toEqual(["sent", "delivered", "read"]);
    expectClean(sim);
  });

  it("refused sends are recorded and owed to nobody", async () => {
    const sim = createSimulation({
      seed: 14,
      hooks: {
        beforeSend: (e) =>
          e.text.includes("spam") ? { code: "forbidden_sender", message: "no spam" } : undefined,
      },
    });
    const alice = sim.client("alice");
    const bob = sim.client("bob");
    await sim.run(20);
    const spam = alice.send(bob.user, "buy spam");
    const ham = alice.send(bob.user, "hello");
    await sim.runUntilQuiet();
    expect(alice.outgoingFor(spam)!.state).toBe("refused");
    expect(alice.outgoingFor(spam)!.reason).toBe("forbidden_sender");
    expect(alice.outgoingFor(ham)!.state).toBe("sent");
    expect(bob.received.map((r) => r.clientId)).toEqual([ham]);
    expectClean(sim);
  });

  it("rejects unknown nodes and duplicate devices", () => {
    const sim = createSimulation({ seed: 15, nodes: 2 });
    sim.client("alice");
    expect(() => sim.client("alice")).toThrow(/already exists/);
    expect(() => sim.client("bob", { node: "n9" })).toThrow(/unknown node/);
    expect(() => createSimulation({ seed: 1, bus: { drop: 2 } })).toThrow(/probability/);
    expect(sim.nodes.map((n) => n.id)).toEqual(["n1", "n2"]);
  });

  it("self-messages reach the sender's other devices", async () => {
    const sim = createSimulation({ seed: 16 });
    const phone = sim.client("alice", { device: "phone" });
    const laptop = sim.client("alice", { device: "laptop" });
    await sim.run(20);
    phone.send("alice" as UserId, "note to self");
    await sim.runUntilQuiet();
    expect(laptop.received).toHaveLength(1);
    expect(phone.received).toHaveLength(0);
    expectClean(sim);
  });
});
