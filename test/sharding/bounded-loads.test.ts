import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isRelayError } from "../../src/core/index.js";
import { BoundedLoads, HashRing } from "../../src/sharding/index.js";

function assertWithinCaps(b: BoundedLoads, ring: HashRing): void {
  let total = 0;
  for (const [node, load] of b.loads()) {
    expect(ring.has(node)).toBe(true);
    expect(load).toBeLessThanOrEqual(b.capOf(node));
    total += load;
  }
  expect(total).toBe(b.size);
}

describe("BoundedLoads", () => {
  it("validates the balance factor", () => {
    const ring = new HashRing({ nodes: ["a"] });
    for (const c of [1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new BoundedLoads(ring, { balanceFactor: c })).toThrow(
        expect.objectContaining({ code: "invalid_option" }),
      );
    }
    expect(new BoundedLoads(ring).balanceFactor).toBe(1.25);
  });

  it("throws on an empty ring", () => {
    try {
      new BoundedLoads(new HashRing()).assign("k");
      expect.fail("should throw");
    } catch (e) {
      expect(isRelayError(e, "invalid_option")).toBe(true);
    }
  });

  it("keeps most keys on their ring owner and caps the hot node", () => {
    const ring = new HashRing({ vnodes: 4, nodes: ["a", "b", "c", "d"] }); // few points: skewed
    const b = new BoundedLoads(ring, { balanceFactor: 1.25 });
    let onOwner = 0;
    for (let i = 0; i < 4000; i++) {
      const k = `k${i}`;
      if (b.assign(k) === ring.lookup(k)) onOwner++;
      expect(b.assign(k)).toBe(b.ownerOf(k)); // idempotent
    }
    expect(b.size).toBe(4000);
    for (const n of ["a", "b", "c", "d"]) expect(b.loadOf(n)).toBeLessThanOrEqual(1250);
    expect(onOwner).toBeGreaterThan(2000);
  });

  it("never exceeds ceil(c * mean) through any sequence of assigns and releases", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.double({ min: 1.05, max: 2, noNaN: true }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 80 })), { maxLength: 300 }),
        (nodes, c, ops) => {
          const ring = new HashRing({
            vnodes: 8,
            nodes: Array.from({ length: nodes }, (_, i) => ({ id: `n${i}`, weight: 1 + (i % 3) })),
          });
          const b = new BoundedLoads(ring, { balanceFactor: c });
          for (const [assign, k] of ops) {
            if (assign) b.assign(`key${k}`);
            else {
              for (const m of b.release(`key${k}`)) expect(b.ownerOf(m.key)).toBe(m.to);
              expect(b.ownerOf(`key${k}`)).toBeUndefined();
            }
            assertWithinCaps(b, ring);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("rebalance after nodes join or leave keeps the cap and reports moves", () => {
    const ring = new HashRing({ vnodes: 32, nodes: ["a", "b", "c"] });
    const b = new BoundedLoads(ring, { balanceFactor: 1.1 });
    for (let i = 0; i < 600; i++) b.assign(`k${i}`);
    const before = new Map(Array.from({ length: 600 }, (_, i) => [`k${i}`, b.ownerOf(`k${i}`)]));
    ring.add("d");
    ring.remove("a");
    const moves = b.rebalance();
    assertWithinCaps(b, ring);
    expect(b.size).toBe(600);
    for (const m of moves) {
      expect(before.get(m.key)).not.toBe(m.to);
      expect(b.ownerOf(m.key)).toBe(m.to);
      if (before.get(m.key) === "a") expect(m.from).toBeUndefined();
    }
    const moved = new Set(moves.map((m) => m.key));
    for (const [k, n] of before) if (!moved.has(k)) expect(b.ownerOf(k)).toBe(n);
    expect(b.loadOf("a")).toBe(0);
  });
});
