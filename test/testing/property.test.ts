import fc from "fast-check";
import { describe, it } from "vitest";
import type { MessageId } from "../../src/core/index.js";
import {
  createSimulation,
  type Simulation,
  scheduleTraffic,
  type Violation,
} from "../../src/testing/index.js";

/** One scheduled fault: what, where (an index wrapped onto nodes or clients), when and for how long. */
const faultArb = fc.record({
  at: fc.integer({ min: 0, max: 3000 }),
  kind: fc.constantFrom("crash", "partition", "offline", "switch"),
  target: fc.nat({ max: 20 }),
  ms: fc.integer({ min: 50, max: 4000 }),
});

const worldArb = fc.record({
  seed: fc.integer(),
  nodes: fc.integer({ min: 1, max: 4 }),
  users: fc.integer({ min: 2, max: 6 }),
  secondDevices: fc.integer({ min: 0, max: 2 }),
  messages: fc.integer({ min: 1, max: 60 }),
  busDrop: fc.constantFrom(0, 0.05, 0.2),
  busDuplicate: fc.constantFrom(0, 0.1),
  busDelay: fc.constantFrom<number | { min: number; max: number } | { mean: number }>(
    2,
    { min: 1, max: 30 },
    { mean: 15 },
  ),
  clientDrop: fc.constantFrom(0, 0.01, 0.05),
  faults: fc.array(faultArb, { maxLength: 4 }),
});

type World = typeof worldArb extends fc.Arbitrary<infer T> ? T : never;

function build(w: World, reorder = 0): Simulation {
  const sim = createSimulation({
    seed: w.seed,
    nodes: w.nodes,
    bus: { drop: w.busDrop, duplicate: w.busDuplicate, reorder, delay: w.busDelay },
    clients: { drop: w.clientDrop },
  });
  for (let i = 0; i < w.users; i++) sim.client(`u${i}`);
  for (let i = 0; i < w.secondDevices; i++) sim.client(`u${i % w.users}`, { device: "d2" });
  scheduleTraffic(sim, { messages: w.messages, spanMs: 3000 });
  for (const f of w.faults) {
    const node = sim.nodes[f.target % sim.nodes.length]!.id;
    const client = sim.clients[f.target % sim.clients.length]!;
    sim.at(f.at, () => {
      switch (f.kind) {
        case "crash":
          sim.crash(node);
          sim.at(f.ms, () => sim.restart(node));
          break;
        case "partition":
          sim.partition(
            [node],
            sim.nodes.filter((n) => n.id !== node).map((n) => n.id),
          );
          sim.at(f.ms, () => sim.heal());
          break;
        case "offline":
          client.disconnect();
          sim.at(f.ms, () => client.connect());
          break;
        case "switch":
          client.connect(sim.nodes[(f.target + 1) % sim.nodes.length]!.id);
          break;
      }
    });
  }
  return sim;
}

/**
 * A no-loss violation for a delivery the router did give up on: the `failed` receipt existed
 * but was lost because the sender was offline then (known gap, see known-gaps.test.ts).
 */
function lostFailedReceipt(sim: Simulation, v: Violation): boolean {
  if (v.invariant !== "no-loss") return false;
  const id = /^message (\S+) /.exec(v.message)?.[1];
  return id !== undefined && sim.failedDeliveries().has(id as MessageId);
}

/** Runs the workload and its faults, then heals everything and lets the cluster go quiet. */
async function play(sim: Simulation): Promise<void> {
  await sim.run(7500);
  sim.heal();
  for (const n of sim.nodes) sim.restart(n.id);
  sim.connectAll();
  await sim.runUntilQuiet();
}

describe("simulation property", () => {
  it("random workloads and fault schedules keep every invariant", async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, async (w) => {
        const sim = build(w);
        await play(sim);
        // FIFO per device included, over a bus that drops packets, partitions and crashes:
        // a reconnect sends only what the window holds, so a lost transmission is retried
        // before anything after it goes out.
        const v = sim.check({ bounded: true }).filter((x) => !lostFailedReceipt(sim, x));
        if (v.length > 0) throw new Error(sim.report(v, 40));
      }),
      { numRuns: 40 },
    );
  });

  it("under bus reordering every invariant but FIFO holds", async () => {
    await fc.assert(
      fc.asyncProperty(worldArb, async (w) => {
        const sim = build(w, 0.2);
        await play(sim);
        const v = sim
          .check({ bounded: true })
          .filter((x) => x.invariant !== "fifo" && !lostFailedReceipt(sim, x));
        if (v.length > 0) throw new Error(sim.report(v, 40));
      }),
      { numRuns: 20 },
    );
  });
});
