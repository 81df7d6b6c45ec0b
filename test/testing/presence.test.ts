import { describe, expect, it } from "vitest";
import type { UserId } from "../../src/core/index.js";
import { type GatewayPresence, presenceBridge } from "../../src/gateway/index.js";
import { PresenceTracker } from "../../src/presence/index.js";
import type { Router } from "../../src/router/index.js";
import { createSimulation, type SimNodeContext } from "../../src/testing/index.js";

/** Per-node presence: a PresenceTracker bridged into the node's gateway. */
function presenceFor(ctx: SimNodeContext, router: Router): { presence: GatewayPresence } {
  const tracker = new PresenceTracker({ clock: ctx.clock, thresholdMs: 3_600_000, coalesceMs: 0 });
  return { presence: presenceBridge(tracker, router) };
}

describe("presence convergence", () => {
  it("a subscriber's view converges to who is connected (one node)", async () => {
    const sim = createSimulation({
      seed: "presence",
      nodes: 1,
      gateway: presenceFor,
      clients: { drop: 0.02 },
    });
    const carol = sim.client("carol");
    const alice = sim.client("alice");
    const bob = sim.client("bob");
    carol.subscribePresence(["alice", "bob"]);
    await sim.run(50);
    carol.subscribePresence(["alice", "bob"]);
    sim.at(100, () => alice.disconnect());
    sim.at(300, () => bob.disconnect());
    sim.at(900, () => bob.connect());
    for (let i = 0; i < 20; i++) sim.at(i * 50, () => bob.send(carol.user, `m${i}`));
    await sim.runUntilQuiet();
    expect(sim.isOnline("alice")).toBe(false);
    expect(sim.isOnline("bob")).toBe(true);
    expect(carol.presence.get("alice" as UserId)?.status).toBe("offline");
    expect(sim.check({ presence: true, bounded: false })).toEqual([]);
    // the `gateway` option's adapter replaced the built-in presence
    expect(sim.node("n1").presence).toBeUndefined();
  });

  it("the checker reports a viewer that never learned a subject came online", async () => {
    const sim = createSimulation({ seed: "presence-2", nodes: 1, presence: false });
    const carol = sim.client("carol");
    sim.client("alice");
    carol.subscribePresence(["alice"]);
    await sim.runUntilQuiet();
    const v = sim.check({ presence: true });
    expect(v.map((x) => x.invariant)).toEqual(["presence"]);
  });
});
