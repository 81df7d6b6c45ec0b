import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/index.js";

describe("ManualClock", () => {
  it("fires timers in order of due time, then of scheduling", () => {
    const c = new ManualClock(100);
    const order: string[] = [];
    c.setTimeout(() => order.push("b"), 20);
    c.setTimeout(() => order.push("a"), 10);
    c.setTimeout(() => order.push("c"), 20);
    c.advance(15);
    expect(order).toEqual(["a"]);
    expect(c.now()).toBe(115);
    c.advance(5);
    expect(order).toEqual(["a", "b", "c"]);
  });

  it("runs intervals until cleared, and clear stops a timeout", () => {
    const c = new ManualClock();
    let n = 0;
    const t = c.setInterval(() => n++, 10);
    const never = c.setTimeout(() => {
      n += 100;
    }, 5);
    c.clear(never);
    c.advance(35);
    expect(n).toBe(3);
    c.clear(t);
    c.advance(100);
    expect(n).toBe(3);
    expect(c.pending).toBe(0);
  });

  it("timers scheduled by a firing timer at the same instant run in the same advance", () => {
    const c = new ManualClock();
    const seen: number[] = [];
    c.setTimeout(() => {
      seen.push(c.now());
      c.setTimeout(() => seen.push(c.now()), 0);
    }, 5);
    c.advance(5);
    expect(seen).toEqual([5, 5]);
  });

  it("runAll drains everything and bounds runaway intervals", () => {
    const c = new ManualClock();
    c.setTimeout(() => {}, 1000);
    expect(c.runAll()).toBe(1);
    c.setInterval(() => {}, 1);
    expect(c.runAll(50)).toBe(50);
  });

  it("fires any schedule in non-decreasing time order (fast-check)", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { maxLength: 100 }), (delays) => {
        const c = new ManualClock();
        const fired: number[] = [];
        for (const d of delays) c.setTimeout(() => fired.push(c.now()), d);
        c.advance(1000);
        expect(fired).toHaveLength(delays.length);
        expect(fired).toEqual([...delays].sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });
});
