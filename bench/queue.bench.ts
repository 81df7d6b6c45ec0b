/**
 * DeliveryQueue figures.
 * - `queue.enqueue_ack`: one enqueue (store append + dedupe record + transmit to a connected
 *   device) followed by its ack, in memory, per operation: `ops_per_s` through the synchronous
 *   path the router takes over the memory store (`queue.sync`), `ops_per_s_async` through the
 *   awaited `enqueue`/`ack`, measured side by side.
 * - `queue.overload`: virtual time. Devices drain through one consumer of fixed capacity;
 *   the offered load is 2x that capacity (10% high lane, 90% low) for a fixed duration, then
 *   drains. Value: high-lane p99 wait (enqueue to ack) over the same shape at 0.5x load.
 */

import {
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  ManualClock,
  messageId,
  seededRandom,
  userId,
} from "../src/core/index.js";
import { DeliveryQueue, LoadSignal, MemoryQueueStore } from "../src/queue/index.js";
import { type BenchContext, rates } from "./harness.js";

interface OverloadRun {
  highP99: number;
  lowP99: number;
  deferred: number;
  lost: number;
  failed: number;
  accepted: number;
}

const TICK_MS = 10;
/** Messages the consumer absorbs per tick. */
const CAPACITY = 100;

/**
 * Offers `load` x capacity for `seconds` of virtual time, then drains. Every transmission
 * joins one FIFO consumer that acks `CAPACITY` messages per tick (a node's outbound link).
 */
async function overloadRun(
  load: number,
  seconds: number,
  lanes: boolean,
  order: "fifo" | "priority" = "fifo",
): Promise<OverloadRun> {
  const clock = new ManualClock();
  const random = seededRandom(`overload-${load}`);
  const devices: DeviceKey[] = [];
  for (let d = 0; d < 200; d++) devices.push(deviceKey(userId(`u${d}`), deviceId("phone")));
  const link: Array<{ device: DeviceKey; env: Envelope }> = [];
  let q!: DeliveryQueue;
  const signal = new LoadSignal({
    clock,
    histogram: false,
    depth: () => q.backlog,
    depthThreshold: lanes ? 2 * CAPACITY : Number.MAX_SAFE_INTEGER,
    recoverRatio: 0.5,
    sampleIntervalMs: 50,
  });
  let failed = 0;
  q = new DeliveryQueue({
    clock,
    random,
    load: signal,
    window: 1,
    order,
    maxPerDevice: 1_000_000,
    retry: { retries: 50, minTimeout: 5000, maxTimeout: 30_000 },
    transmit: (device, env) => link.push({ device, env }),
    onFailed: () => failed++,
  });
  for (const d of devices) q.deviceConnected(d);
  const waits: [number[], number[], number[]] = [[], [], []];
  const enqueuedAt = new Map<string, number>();
  const accepted = new Set<string>();
  let acked = 0;
  q.on("delivered", (device, id) => {
    const key = `${id}|${device}`;
    if (!accepted.delete(key)) return;
    acked++;
  });
  const lane = { high: 0, normal: 1, low: 2 } as const;
  let n = 0;
  let carry = 0;
  const ticks = (seconds * 1000) / TICK_MS;
  for (let t = 0; ; t++) {
    clock.advance(TICK_MS);
    // The consumer absorbs CAPACITY of last tick's transmissions, in order, and acks each.
    const batch = link.splice(0, CAPACITY);
    for (const { device, env } of batch) {
      const key = `${env.id}|${device}`;
      if (accepted.has(key)) waits[lane[env.priority]].push(clock.now() - enqueuedAt.get(env.id)!);
      await q.ack(device, [env.id]);
    }
    if (t < ticks) {
      carry += load * CAPACITY;
      for (; carry >= 1; carry--) {
        n++;
        const priority = random.next() < 0.1 ? "high" : "low";
        const env: Envelope = {
          id: messageId(`m${n}`),
          clientId: clientMessageId(`c${n}`),
          from: userId("sender"),
          fromDevice: deviceId("s1"),
          to: { user: userId("bob") },
          conversation: conversationId("c"),
          seq: n,
          ts: clock.now(),
          text: "x",
          priority,
        };
        const device = devices[Math.floor(random.next() * devices.length)]!;
        enqueuedAt.set(env.id, clock.now());
        accepted.add(`${env.id}|${device}`);
        const r = await q.enqueue(env, [device], { remember: false });
        if (!r.ok) accepted.delete(`${env.id}|${device}`);
      }
    }
    if (t >= ticks && q.depth === 0 && link.length === 0) break;
    if (t > ticks * 20) break;
  }
  const p99 = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(s.length * 0.99) - 1)] ?? 0;
  };
  const run = {
    highP99: p99(waits[0]),
    lowP99: p99(waits[2]),
    deferred: q.stats.deferred,
    lost: accepted.size - failed,
    failed,
    accepted: acked + accepted.size,
  };
  q.close();
  return run;
}

function envelopes(count: number): Envelope[] {
  const out: Envelope[] = [];
  for (let i = 0; i < count; i++) {
    out.push({
      id: messageId(`m${i}`),
      clientId: clientMessageId(`c${i}`),
      from: userId("alice"),
      fromDevice: deviceId("a1"),
      to: { user: userId("bob") },
      conversation: conversationId("dm:alice:bob"),
      seq: i + 1,
      ts: 0,
      text: "hello",
      priority: i % 10 === 0 ? "high" : "normal",
    });
  }
  return out;
}

export default async function queueBench(ctx: BenchContext): Promise<void> {
  if (ctx.wants("queue.enqueue_ack")) {
    const devices: DeviceKey[] = [];
    for (let d = 0; d < 64; d++) devices.push(deviceKey(userId(`u${d}`), deviceId("phone")));
    // Envelopes are made before timing, each with its own client id. The clock moves one
    // dedupe window (1 s) per batch, so every enqueue writes a fresh dedupe record and every
    // record is swept a batch later, as with real sends; the table stays at about a batch
    // (1000 records), so this is the queue's own cost, not cache misses in a huge table.
    const pool = envelopes(4096);
    // The argument arrays too (the router builds them from the frame it routes).
    const to = devices.map((d) => [d]);
    const acks = pool.map((e) => [e.id]);
    const batch = 1000;
    const setup = () => {
      const clock = new ManualClock();
      let transmitted = 0;
      const q = new DeliveryQueue({
        clock,
        store: new MemoryQueueStore(),
        load: new LoadSignal({ clock, histogram: false }),
        dedupeWindowMs: 1000,
        transmit: () => {
          transmitted++;
        },
      });
      for (const d of devices) q.deviceConnected(d);
      return { clock, q, transmitted: () => transmitted };
    };
    const sync = setup();
    const fast = sync.q.sync;
    if (!fast) throw new Error("queue.enqueue_ack: the memory store has no sync path");
    const async = setup();
    let i = 0;
    let j = 0;
    const r = await rates({
      sync: {
        batch,
        fn: () => {
          for (let k = 0; k < batch; k++, i++) {
            const m = i & 4095;
            const d = i & 63;
            fast.enqueueSync(pool[m]!, to[d]!);
            fast.ackSync(devices[d]!, acks[m]!);
          }
          sync.clock.advance(1000);
        },
      },
      async: {
        batch,
        fn: async () => {
          for (let k = 0; k < batch; k++, j++) {
            const m = j & 4095;
            const d = j & 63;
            await async.q.enqueue(pool[m]!, to[d]!);
            await async.q.ack(devices[d]!, acks[m]!);
          }
          async.clock.advance(1000);
        },
      },
    });
    for (const [run, n] of [
      [sync, i],
      [async, j],
    ] as const) {
      if (run.q.depth !== 0 || run.transmitted() !== n) {
        throw new Error("queue.enqueue_ack: lost entries");
      }
      run.q.close();
    }
    ctx.report({
      bench: "queue.enqueue_ack",
      ops_per_s: r.sync ?? 0,
      ops_per_s_async: r.async ?? 0,
      store: "memory",
      devices: devices.length,
    });
  }

  if (ctx.wants("queue.overload")) {
    const seconds = 5;
    const base = await overloadRun(0.5, seconds, true);
    const loaded = await overloadRun(2, seconds, true);
    const noLanes = await overloadRun(2, seconds, false);
    const priority = await overloadRun(2, seconds, true, "priority");
    ctx.report({
      bench: "queue.overload",
      value: loaded.highP99 / Math.max(1, base.highP99),
      unit: "ratio",
      deferred: loaded.deferred,
      lost: loaded.lost,
      failed: loaded.failed,
      accepted: loaded.accepted,
      high_p99_ms: loaded.highP99,
      unloaded_high_p99_ms: base.highP99,
      low_p99_ms: loaded.lowP99,
      no_lanes_ratio: noLanes.highP99 / Math.max(1, base.highP99),
      priority_order_ratio: priority.highP99 / Math.max(1, base.highP99),
      priority_order_lost: priority.lost,
    });
  }
}
