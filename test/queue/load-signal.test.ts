import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/index.js";
import { LoadSignal, ManualDelayHistogram } from "../../src/queue/index.js";

function setup(extra: { depthThreshold?: number } = {}) {
  const clock = new ManualClock();
  const h = new ManualDelayHistogram();
  let depth = 0;
  const signal = new LoadSignal({
    clock,
    histogram: () => h,
    depth: () => depth,
    delayThresholdMs: 100,
    depthThreshold: extra.depthThreshold ?? 1000,
    recoverRatio: 0.5,
    sampleIntervalMs: 200,
  });
  const changes: boolean[] = [];
  signal.on("change", (d) => changes.push(d));
  return { clock, h, signal, changes, setDepth: (d: number) => (depth = d) };
}

describe("LoadSignal", () => {
  it("normalDepth is the depth threshold times the recover ratio", () => {
    expect(setup({ depthThreshold: 300 }).signal.normalDepth).toBe(150);
    expect(new LoadSignal({ histogram: false }).normalDepth).toBe(800_000);
  });

  it("enables the histogram it is given", () => {
    const { h } = setup();
    expect(h.enabled).toBe(true);
  });

  it("turns degraded on event-loop delay, with hysteresis on the way back", () => {
    const { h, signal, changes } = setup();
    h.record(10);
    expect(signal.sample()).toBe(false);
    for (let i = 0; i < 100; i++) h.record(i >= 98 ? 150 : 10);
    expect(signal.sample()).toBe(true); // p99 of 100 samples: the 99th smallest, 150 ms
    expect(signal.lastDelayMs).toBe(150);
    h.record(70); // below the threshold but above threshold * recoverRatio
    expect(signal.sample()).toBe(true);
    h.record(40);
    expect(signal.sample()).toBe(false);
    expect(changes).toEqual([true, false]);
  });

  it("turns degraded on queue depth", () => {
    const { signal, setDepth } = setup();
    setDepth(999);
    expect(signal.sample()).toBe(false);
    setDepth(1000);
    expect(signal.sample()).toBe(true);
    setDepth(600);
    expect(signal.sample()).toBe(true);
    setDepth(499);
    expect(signal.sample()).toBe(false);
  });

  it("poll samples at most once per interval", () => {
    const { clock, signal, setDepth } = setup();
    expect(signal.poll()).toBe(false);
    setDepth(5000);
    expect(signal.poll()).toBe(false);
    clock.advance(199);
    expect(signal.poll()).toBe(false);
    clock.advance(1);
    expect(signal.poll()).toBe(true);
  });

  it("start samples periodically through the clock; stop ends it", () => {
    const { clock, signal, setDepth, changes } = setup();
    signal.start();
    setDepth(5000);
    clock.advance(200);
    expect(signal.degraded).toBe(true);
    signal.stop();
    setDepth(0);
    clock.advance(1000);
    expect(signal.degraded).toBe(true);
    expect(clock.pending).toBe(0);
    expect(changes).toEqual([true]);
  });

  it("setDegraded overrides the measurement until cleared", () => {
    const { signal, changes, setDepth } = setup();
    signal.setDegraded(true);
    expect(signal.degraded).toBe(true);
    expect(signal.overridden).toBe(true);
    expect(signal.shouldShed(true)).toBe(true);
    expect(signal.shouldShed(false)).toBe(false);
    setDepth(5000);
    signal.sample();
    signal.setDegraded(false);
    expect(signal.degraded).toBe(false);
    signal.setDegraded(undefined);
    expect(signal.degraded).toBe(true); // back to the measurement
    expect(changes).toEqual([true, false, true]);
  });

  it("can judge by depth only, and rejects bad options", () => {
    const s = new LoadSignal({ histogram: false, depth: () => 5, depthThreshold: 5 });
    expect(s.sample()).toBe(true);
    expect(() => new LoadSignal({ histogram: false, delayThresholdMs: 0 })).toThrow(
      expect.objectContaining({ code: "invalid_option" }),
    );
    expect(() => new LoadSignal({ histogram: false, depthThreshold: 1.5 })).toThrow(
      /depthThreshold/,
    );
  });

  it("defaults to the real event-loop delay histogram", () => {
    const s = new LoadSignal();
    expect(s.sample()).toBe(false);
    s.close();
  });
});
