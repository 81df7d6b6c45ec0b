/**
 * DeliveryQueue figures. `queue.enqueue_ack`: one enqueue (store append + dedupe record +
 * transmit to a connected device) followed by its ack, in memory, per operation.
 */
import type { BenchContext } from "./harness.js";
import {
  clientMessageId,
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  ManualClock,
  messageId,
  userId,
} from "../src/core/index.js";
import { DeliveryQueue, LoadSignal, MemoryQueueStore } from "../src/queue/index.js";

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
    const clock = new ManualClock();
    const pool = envelopes(4096);
    const devices: DeviceKey[] = [];
    for (let d = 0; d < 64; d++) devices.push(deviceKey(userId(`u${d}`), deviceId("phone")));
    let transmitted = 0;
    const q = new DeliveryQueue({
      clock,
      store: new MemoryQueueStore(),
      load: new LoadSignal({ clock, histogram: false }),
      transmit: () => {
        transmitted++;
      },
    });
    for (const d of devices) q.deviceConnected(d);
    const batch = 1000;
    let i = 0;
    const ops_per_s = await ctx.rate(
      "queue.enqueue_ack",
      async () => {
        for (let k = 0; k < batch; k++) {
          const env = pool[i % pool.length]!;
          const device = devices[i % devices.length]!;
          i++;
          await q.enqueue(env, [device]);
          await q.ack(device, [env.id]);
        }
      },
      { batch },
    );
    if (q.depth !== 0 || transmitted !== i) throw new Error("queue.enqueue_ack: lost entries");
    q.close();
    ctx.report({ bench: "queue.enqueue_ack", ops_per_s, store: "memory", devices: devices.length });
  }
}
