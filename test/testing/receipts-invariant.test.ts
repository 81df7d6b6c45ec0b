import { describe, expect, it } from "vitest";
import { createSimulation } from "../../src/testing/index.js";

describe("the simulation's receipts invariant", () => {
  // One node: across nodes, a message released as read on one node's tracker and failed on
  // another's is still told `failed` (the released id is remembered per tracker, not in the store).
  it("holds when one device of the recipient delivers and reads and the other never comes back (no failed after delivered)", async () => {
    const sim = createSimulation({ nodes: 1, seed: 3, ttlMs: 20_000 });
    const alice = sim.client("alice");
    sim.client("bob", { autoRead: true });
    const laptop = sim.client("bob", { device: "laptop" });
    sim.at(10, () => laptop.disconnect());
    sim.at(200, () => {
      alice.send("bob" as never, "one");
      alice.send("bob" as never, "two");
    });
    await sim.runUntilQuiet();
    sim.clock.advance(60_000);
    await sim.runUntilQuiet();
    const statuses = alice.receipts.map((r) => r.status);
    expect(statuses).toContain("read");
    const v = sim.check().filter((x) => x.invariant === "receipts-monotonic");
    expect(v.map((x) => x.message)).toEqual([]);
  });
});
