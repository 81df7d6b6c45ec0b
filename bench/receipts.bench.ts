/**
 * Receipt figures. `receipts.transition`: pure state-machine updates per second on one core.
 * `receipts.memory`: heap bytes per tracked (message, device) entry at 1,000,000 entries
 * (100,000 group messages × 10 recipient devices), measured with `--expose-gc` and
 * `process.memoryUsage()`; `receipts.memory_1to1` the same for 500,000 1:1 messages × 2
 * devices. `receipts.tracker_ack`: a 1:1 message tracked, delivered and read through
 * `ReceiptTracker` (memory store), per message.
 */
import {
  clientMessageId,
  type DeviceId,
  deviceId,
  directConversation,
  type Envelope,
  groupConversation,
  groupId,
  ManualClock,
  messageId,
  type UserId,
  userId,
} from "../src/core/index.js";
import {
  RECEIPT_STATES,
  type ReceiptState,
  ReceiptTracker,
  transition,
} from "../src/receipts/index.js";
import type { BenchContext } from "./harness.js";

const alice = userId("alice");

function envelope(i: number, to: UserId | string, group: boolean): Envelope {
  return {
    id: messageId(`m${i.toString(36)}`),
    clientId: clientMessageId(`c${i.toString(36)}`),
    from: alice,
    fromDevice: deviceId("a1"),
    to: group ? { group: groupId(to) } : { user: to as UserId },
    conversation: group ? groupConversation(groupId(to)) : directConversation(alice, to as UserId),
    seq: i,
    ts: 0,
    text: "",
    priority: "normal",
  };
}

async function heapPerEntry(messages: number, devicesPer: number, group: boolean): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return Number.NaN;
  const users = Array.from({ length: 1000 }, (_, i) => userId(`user${i}`));
  const devices: DeviceId[] = Array.from({ length: 2 }, (_, i) => deviceId(`phone${i}`));
  const clock = new ManualClock(1_700_000_000_000);
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const tracker = new ReceiptTracker({ clock, sweepIntervalMs: 0 });
  for (let i = 1; i <= messages; i++) {
    const recipients = [];
    if (group) {
      for (let k = 0; k < devicesPer; k++) {
        recipients.push({ userId: users[(i + k) % users.length]!, deviceId: devices[0]! });
      }
    } else {
      for (let k = 0; k < devicesPer; k++) {
        recipients.push({ userId: users[i % users.length]!, deviceId: devices[k % 2]! });
      }
    }
    const to = group ? `g${i % 100}` : users[i % users.length]!;
    await tracker.track(envelope(i, to, group), recipients);
  }
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  const size = await tracker.size();
  if (size.entries !== messages * devicesPer) throw new Error("receipts.memory: lost entries");
  tracker.close();
  return (after - before) / size.entries;
}

export default async function receiptsBench(ctx: BenchContext): Promise<void> {
  if (ctx.wants("receipts.transition")) {
    // Random (state, event) pairs, precomputed so the loop measures only `transition`.
    const n = 1 << 16;
    const states: ReceiptState[] = [];
    const events: ReceiptState[] = [];
    let x = 12345;
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      states.push(RECEIPT_STATES[x % 5]!);
      events.push(RECEIPT_STATES[(x >>> 8) % 5]!);
    }
    let sink = 0;
    const batch = 100_000;
    let i = 0;
    const ops_per_s = await ctx.rate(
      "receipts.transition",
      () => {
        for (let k = 0; k < batch; k++) {
          const j = i++ & (n - 1);
          const r = transition(states[j]!, events[j]!);
          if (r.changed) sink++;
        }
      },
      { batch },
    );
    if (sink < 0) throw new Error("unreachable");
    ctx.report({ bench: "receipts.transition", ops_per_s });
  }

  if (ctx.wants("receipts.tracker_ack")) {
    const clock = new ManualClock();
    const tracker = new ReceiptTracker({ clock, sweepIntervalMs: 0 });
    const bob = userId("bob");
    const devices = [
      { userId: bob, deviceId: deviceId("b1") },
      { userId: bob, deviceId: deviceId("b2") },
    ];
    let notices = 0;
    tracker.on("notify", () => notices++);
    let i = 0;
    const batch = 1000;
    const ops_per_s = await ctx.rate(
      "receipts.tracker_ack",
      async () => {
        for (let k = 0; k < batch; k++) {
          const env = envelope(++i, bob, false);
          await tracker.track(env, devices);
          await tracker.ack(bob, devices[0]!.deviceId, "delivered", [env.id]);
          await tracker.ack(bob, devices[1]!.deviceId, "read", [env.id]);
        }
      },
      { batch },
    );
    const size = await tracker.size();
    if (size.messages !== 0 || notices !== 3 * i) throw new Error("receipts.tracker_ack: leak");
    tracker.close();
    ctx.report({
      bench: "receipts.tracker_ack",
      ops_per_s,
      store: "memory",
      unit_of_work: "track+delivered+read",
    });
  }

  if (ctx.wants("receipts.memory")) {
    const value = await heapPerEntry(100_000, 10, true);
    ctx.report({
      bench: "receipts.memory",
      value,
      unit: "bytes",
      entries: 1_000_000,
      shape: "100k group messages x 10 devices",
      ...(Number.isNaN(value) ? { note: "run with node --expose-gc" } : {}),
    });
  }

  if (ctx.wants("receipts.memory_1to1")) {
    const value = await heapPerEntry(500_000, 2, false);
    ctx.report({
      bench: "receipts.memory_1to1",
      value,
      unit: "bytes",
      entries: 1_000_000,
      shape: "500k 1:1 messages x 2 devices",
    });
  }
}
