/**
 * sim.throughput: simulated messages per second of wall time, for a 3-node, 1,000-user
 * world with faults on (bus drop, duplicate and reorder; client links that break and
 * reconnect). Every message goes client -> gateway -> router -> queue -> bus -> gateway ->
 * client and is acked back, under the virtual clock.
 */
import { monotonicNow } from "../src/core/index.js";
import { createSimulation, scheduleTraffic } from "../src/testing/index.js";
import type { BenchContext } from "./harness.js";

const NODES = 3;
const USERS = 1000;
const MESSAGES = 20_000;
/** Virtual time the traffic is spread over: 1,000 messages per virtual second. */
const SPAN_MS = 20_000;

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("sim.throughput")) return;
  const sim = createSimulation({
    seed: "bench",
    nodes: NODES,
    bus: { delay: { min: 1, max: 10 }, drop: 0.01, duplicate: 0.01, reorder: 0.01 },
    clients: { delay: { min: 1, max: 20 }, drop: 0.0005 },
    traceSize: 100,
  });
  for (let i = 0; i < USERS; i++) sim.client(`u${i}`);
  scheduleTraffic(sim, { messages: MESSAGES, spanMs: SPAN_MS });
  const t0 = monotonicNow();
  const cpu0 = process.cpuUsage();
  const quiet = await sim.runUntilQuiet(10 * SPAN_MS);
  const cpu = process.cpuUsage(cpu0);
  const seconds = (monotonicNow() - t0) / 1000;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const delivered = sim.clients.reduce((n, c) => n + c.received.length, 0);
  const violations = sim.check().length;
  ctx.report({
    bench: "sim.throughput",
    ops_per_s: MESSAGES / seconds,
    nodes: NODES,
    users: USERS,
    messages: MESSAGES,
    delivered,
    virtual_s: sim.clock.now() / 1000,
    wall_s: seconds,
    // Wall time on a shared machine includes waiting for a core; CPU time does not.
    cpu_ops_per_s: MESSAGES / cpuSeconds,
    quiet: quiet ? 1 : 0,
    violations,
    bus_dropped: sim.bus.stats.dropped,
  });
}
