/**
 * Presence figures (issue 5):
 * - `presence.touch`: activity updates per second on one core (target >= 3,000,000/s).
 * - `presence.memory`: bytes for 1,000,000 tracked, connected, online users (target <= 150 MB).
 *   `value` = V8 heap used + ArrayBuffer backing stores (the tracker keeps its per-device
 *   fields in typed arrays, which `heapUsed` alone would not count), measured after a full
 *   GC. GC comes from `global.gc` (`node --expose-gc`) or, failing that, is exposed at run
 *   time through `v8.setFlagsFromString`.
 * - `presence.fanout`: one user with 1,000 subscribers changing state: updates delivered/s.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type Clock,
  deviceId,
  ManualClock,
  monotonicNow,
  systemClock,
  type UserId,
  userId,
} from "../src/core/index.js";
import { audiencePrivacy, type PresenceHandle, PresenceTracker } from "../src/presence/index.js";
import type { BenchContext } from "./harness.js";

/**
 * Operations per second of `fn` (which performs `batch` operations), by wall time over a
 * fixed window after a warm-up: total operations / total time. (tinybench's mean
 * throughput, a mean of per-sample rates, overstates rates whose samples vary.)
 */
function measure(fn: () => unknown, batch: number, ms = 1000): number {
  const warm = monotonicNow();
  while (monotonicNow() - warm < 300) fn();
  let calls = 0;
  const start = monotonicNow();
  let now = start;
  while (now - start < ms) {
    fn();
    calls++;
    now = monotonicNow();
  }
  return (calls * batch * 1000) / (now - start);
}

function getGc(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
}

function usedBytes(gc: (() => void) | undefined): { heap: number; buffers: number } {
  if (gc) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}

export default async function presenceBench(ctx: BenchContext): Promise<void> {
  const phone = deviceId("phone");

  if (ctx.wants("presence.touch")) {
    // 131,072 connected users touched round-robin (a working set far larger than the CPU
    // caches), real clock: Date.now() on every touch, as in production.
    const n = 1 << 17;
    const batch = 10_000;
    const run = (clock: Clock, byId: boolean): number => {
      const tracker = new PresenceTracker({ clock });
      const ids: UserId[] = [];
      const handles: PresenceHandle[] = [];
      for (let i = 0; i < n; i++) {
        const u = userId(`user-${i}`);
        ids.push(u);
        handles.push(tracker.connect(u, phone));
      }
      let k = 0;
      const ops = measure(
        byId
          ? () => {
              for (let i = 0; i < batch; i++) tracker.touch(ids[k++ & (n - 1)]!, phone);
            }
          : () => {
              for (let i = 0; i < batch; i++) tracker.touchDevice(handles[k++ & (n - 1)]!);
            },
        batch,
      );
      tracker.close();
      return ops;
    };
    const handleSystem = run(systemClock, false);
    const byIdSystem = run(systemClock, true);
    const handleManual = run(new ManualClock(0), false);
    const byIdManual = run(new ManualClock(0), true);
    const dateNow = measure(() => {
      let x = 0;
      for (let i = 0; i < batch; i++) x += systemClock.now();
      return x;
    }, batch);
    ctx.report({
      bench: "presence.touch",
      ops_per_s: handleSystem,
      api: "touchDevice(handle)",
      users: n,
      clock: "system",
      by_id_ops_per_s: byIdSystem,
      manual_clock_ops_per_s: handleManual,
      by_id_manual_clock_ops_per_s: byIdManual,
      clock_now_per_s: dateNow,
    });
  }

  if (ctx.wants("presence.memory")) {
    const gc = getGc();
    const users = 1_000_000;
    const before = usedBytes(gc);
    const clock = new ManualClock(0);
    const tracker = new PresenceTracker({ clock, initialCapacity: 1 << 20 });
    for (let i = 0; i < users; i++) tracker.connect(userId(`user-${i}`), phone);
    const after = usedBytes(gc);
    const heap = after.heap - before.heap;
    const buffers = after.buffers - before.buffers;
    ctx.report({
      bench: "presence.memory",
      value: heap + buffers,
      unit: "bytes",
      users,
      online: tracker.status(userId("user-0")).status === "online",
      heap_bytes: heap,
      array_buffer_bytes: buffers,
      bytes_per_user: (heap + buffers) / users,
      gc: gc !== undefined,
    });
    tracker.close();
  }

  if (ctx.wants("presence.fanout")) {
    const subscribers = 1_000;
    const make = (privacy: boolean) => {
      const clock = new ManualClock(0);
      const tracker = new PresenceTracker({
        clock,
        coalesceMs: 0,
        graceMs: 0,
        ...(privacy
          ? {
              privacy: audiencePrivacy({
                settingsOf: () => ({ lastSeen: "contacts", online: "everyone" }),
                isContact: (_owner, other) => other.length % 2 === 0,
              }),
            }
          : {}),
      });
      let delivered = 0;
      tracker.on("notify", () => {
        delivered++;
      });
      const subject = userId("celebrity");
      for (let i = 0; i < subscribers; i++) tracker.subscribe(userId(`fan-${i}`), [subject]);
      const fn = () => {
        clock.advance(1);
        tracker.connect(subject, phone);
        clock.advance(1);
        tracker.disconnect(subject, phone, { clean: true });
      };
      // each call flips online -> offline: 2 real changes x every subscriber
      delivered = 0;
      fn();
      if (delivered !== 2 * subscribers) throw new Error(`fan-out delivered ${delivered}`);
      return measure(fn, 2 * subscribers);
    };
    const everyone = make(false);
    const audiences = make(true);
    ctx.report({
      bench: "presence.fanout",
      ops_per_s: everyone,
      subscribers,
      with_audience_privacy_ops_per_s: audiences,
    });
  }
}
