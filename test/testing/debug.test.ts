import { it } from "vitest";
import { createSimulation, scheduleTraffic } from "../../src/testing/index.js";

it("debug", async () => {
  const sim = createSimulation({ seed: "all", nodes: 3, bus: { drop: 0.1, duplicate: 0.1, reorder: 0.1 }, clients: { drop: 0.02 }, traceSize: 100000 });
  for (let i = 0; i < 10; i++) sim.client(`u${i}`);
  sim.client("u0", { device: "d2" });
  scheduleTraffic(sim, { messages: 200, spanMs: 2000 });
  await sim.runUntilQuiet();
  const v = sim.check();
  console.log(v[0]);
  const ids = v[0]!.message.match(/mn[0-9.a-z]+/g)!;
  const c = sim.clients.find((x) => x.key === "u2/d1")!;
  console.log(c.received.filter((r) => r.from === "u1"));
  console.log(sim.trace().split("\n").filter((l) => l.includes("u2/d1") || l.includes("u1.d1") || /dm:u1:u2/.test(l)).join("\n"));
});
