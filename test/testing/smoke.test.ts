import { it } from "vitest";
import { createSimulation, scheduleTraffic, type SimulationOptions } from "../../src/testing/index.js";

const cases: [string, Partial<SimulationOptions>][] = [
  ["none", {}],
  ["bus drop", { bus: { drop: 0.2 } }],
  ["bus dup", { bus: { duplicate: 0.3 } }],
  ["bus reorder", { bus: { reorder: 0.3 } }],
  ["bus exp delay", { bus: { delay: { mean: 20 } } }],
  ["client drop", { clients: { drop: 0.05 } }],
  ["all", { bus: { drop: 0.1, duplicate: 0.1, reorder: 0.1 }, clients: { drop: 0.02 } }],
];

it("smoke", async () => {
  for (const [name, o] of cases) {
    for (const outbox of ["cluster", "per-node"] as const) {
      const sim = createSimulation({ seed: name, nodes: 3, outbox, ...o });
      for (let i = 0; i < 10; i++) sim.client(`u${i}`);
      sim.client("u0", { device: "d2" });
      scheduleTraffic(sim, { messages: 200, spanMs: 2000 });
      const t0 = performance.now();
      const quiet = await sim.runUntilQuiet();
      const v = sim.check();
      console.log(name, outbox, quiet, sim.clock.now(), (performance.now() - t0).toFixed(0), "ms", v.length, v.slice(0, 3).map((x) => x.message), JSON.stringify(sim.bus.stats));
    }
  }
});
