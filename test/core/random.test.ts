import { describe, expect, it } from "vitest";
import { randomIds, seededRandom, sequentialIds } from "../../src/core/index.js";

describe("random and id sources", () => {
  it("seededRandom repeats with its seed and differs across seeds", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it("seededRandom is roughly uniform", () => {
    const r = seededRandom("u");
    const buckets = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) buckets[Math.floor(r.next() * 10)]++;
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });

  it("id sources are unique and namespaced", () => {
    const s = sequentialIds("n1.");
    expect([s.next("m"), s.next("m")]).toEqual(["mn1.1", "mn1.2"]);
    const r = randomIds(seededRandom(1), 8);
    const ids = new Set(Array.from({ length: 1000 }, () => r.next()));
    expect(ids.size).toBe(1000);
  });
});
