/**
 * sim.throughput: simulated messages per second of wall time, for a 3-node, 1,000-user
 * world with faults on (bus drop, duplicate and reorder; client links that break and
 * reconnect). Every message goes client -> gateway -> router -> queue -> bus -> gateway ->
 * client and is acked back, under the virtual clock.
 *
 * Extra fields: `codec_floor_ops_per_s`, the JSON encoding, decoding and validation alone that
 * one simulated message needs, timed right after the run; `of_floor` = figure / floor.
 */
import { monotonicNow } from "../src/core/index.js";
import { FrameParser } from "../src/protocol/index.js";
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
  const floor = codecFloor(MESSAGES);
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
    // The JSON and validation work alone that every simulated message needs, timed in this
    // process right after the run: an upper bound for this figure on this machine.
    codec_floor_ops_per_s: floor,
    of_floor: MESSAGES / seconds / floor,
  });
}

/**
 * Messages per second of the codec work a simulated message cannot avoid, and no more: the
 * client encodes its `send`, the gateway parses and validates it, the server encodes the
 * message and the `sent` receipt, the clients decode both, the server encodes the delivered
 * and read ticks and the sender decodes them (the clients' batched ack frames left out).
 */
function codecFloor(count: number): number {
  const parser = new FrameParser();
  const tick = (status: string, i: number) => ({
    type: "receipt",
    status,
    ids: [`n1.1.${i}`],
    ts: 1_700_000_000_000,
  });
  let sink = 0;
  const t0 = monotonicNow();
  for (let i = 0; i < count; i++) {
    const send = JSON.stringify({ type: "send", id: `c${i}`, to: { user: "u1" }, text: `m${i}` });
    if (parser.parseClient(send).ok) sink++;
    const out = [
      JSON.stringify({
        type: "message",
        id: `n1.1.${i}`,
        clientId: `c${i}`,
        from: "u0",
        fromDevice: "d1",
        to: { user: "u1" },
        conversation: "dm:u0:u1",
        seq: i + 1,
        ts: 1_700_000_000_000,
        text: `m${i}`,
        priority: "high",
      }),
      JSON.stringify({ type: "receipt", status: "sent", clientId: `c${i}`, id: `n1.1.${i}` }),
      JSON.stringify(tick("delivered", i)),
      JSON.stringify(tick("read", i)),
    ];
    for (const f of out) sink += (JSON.parse(f) as { type: string }).type.length;
  }
  const seconds = (monotonicNow() - t0) / 1000;
  if (sink === 0) throw new Error("sim.throughput: the codec floor did nothing");
  return count / seconds;
}
