import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isRelayError } from "../../src/core/index.js";
import { DEFAULT_VNODES, HashRing, murmur3, type RingMove } from "../../src/sharding/index.js";

const nodeNames = (n: number, prefix = "node-") =>
  Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const keysOf = (n: number, prefix = "key:") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

function loads(ring: HashRing, keys: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) {
    const n = ring.lookup(k)!;
    m.set(n, (m.get(n) ?? 0) + 1);
  }
  return m;
}

function maxOverMean(ring: HashRing, keys: readonly string[]): number {
  const m = loads(ring, keys);
  return Math.max(...m.values()) / (keys.length / ring.size);
}

function moveFor(moves: readonly RingMove[], hash: number): RingMove | undefined {
  let lo = 0;
  let hi = moves.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = moves[mid]!;
    if (hash < m.start) hi = mid - 1;
    else if (hash > m.end) lo = mid + 1;
    else return m;
  }
  return undefined;
}

const distinctNodes = (min: number, max: number) =>
  fc.uniqueArray(fc.stringMatching(/^[a-z0-9.:-]{1,12}$/), { minLength: min, maxLength: max });
const keyList = fc.array(fc.string({ maxLength: 16 }), { minLength: 50, maxLength: 300 });

describe("HashRing basics", () => {
  it("an empty ring finds nothing", () => {
    const ring = new HashRing();
    expect(ring.lookup("x")).toBeUndefined();
    expect(ring.lookup("x", 3)).toEqual([]);
    expect(ring.size).toBe(0);
    expect(ring.pointCount).toBe(0);
  });

  it("places vnodes x weight points per node", () => {
    const ring = new HashRing({ vnodes: 10, nodes: ["a", { id: "b", weight: 2.5 }] });
    expect(ring.vnodes).toBe(10);
    expect(ring.pointCount).toBe(35);
    expect(ring.weightOf("b")).toBe(2.5);
    expect(ring.nodes()).toEqual([
      { id: "a", weight: 1 },
      { id: "b", weight: 2.5 },
    ]);
    expect(new HashRing({ nodes: ["a"] }).pointCount).toBe(DEFAULT_VNODES);
  });

  it("rejects bad options with invalid_option", () => {
    const bad = [
      () => new HashRing({ vnodes: 0 }),
      () => new HashRing({ vnodes: 1.5 }),
      () => new HashRing({ nodes: ["a", "a"] }),
      () => new HashRing({ nodes: [{ id: "a", weight: 0 }] }),
      () => new HashRing().add("a").add("a"),
      () => new HashRing().add("a", Number.NaN),
      () => new HashRing().reweigh("a", 2),
      () => new HashRing({ nodes: ["a"] }).reweigh("a", -1),
    ];
    for (const f of bad) {
      try {
        f();
        expect.fail("should throw");
      } catch (e) {
        expect(isRelayError(e, "invalid_option")).toBe(true);
      }
    }
  });

  it("a single node owns everything; remove reports whether it was there", () => {
    const ring = new HashRing({ vnodes: 8, nodes: ["only"] });
    for (const k of keysOf(100)) expect(ring.lookup(k)).toBe("only");
    expect(ring.remove("nope")).toBe(false);
    expect(ring.remove("only")).toBe(true);
    expect(ring.lookup("k")).toBeUndefined();
  });

  it("maps a key to the first point at or after its hash, wrapping", () => {
    const ring = new HashRing({ vnodes: 4, nodes: ["a", "b", "c"] });
    const pts = Array.from({ length: ring.pointCount }, (_, i) => ring.pointAt(i));
    expect([...pts].sort((x, y) => x - y)).toEqual(pts);
    for (let i = 0; i < pts.length; i++) {
      expect(ring.lookupHash(pts[i]!)).toBe(ring.nodeAt(i));
      if (pts[i]! > 0 && (i === 0 || pts[i - 1]! < pts[i]! - 1)) {
        expect(ring.lookupHash(pts[i]! - 1)).toBe(ring.nodeAt(i));
      }
    }
    expect(ring.lookupHash(pts[pts.length - 1]! + 1)).toBe(ring.nodeAt(0));
    expect(ring.lookupHash(0xffffffff)).toBe(ring.nodeAt(0));
    expect(ring.lookup("some key")).toBe(ring.lookupHash(murmur3("some key")));
    expect(HashRing.hash("some key")).toBe(murmur3("some key"));
  });

  it("clone is independent", () => {
    const a = new HashRing({ vnodes: 16, nodes: ["a", "b"] });
    const b = a.clone().add("c");
    expect(a.size).toBe(2);
    expect(b.size).toBe(3);
    expect(a.has("c")).toBe(false);
    for (const k of keysOf(200)) expect(["a", "b"]).toContain(a.lookup(k));
  });

  it("reports its memory", () => {
    const ring = new HashRing({ nodes: nodeNames(100) });
    expect(ring.memoryBytes).toBeGreaterThanOrEqual(ring.pointCount * 8);
    expect(ring.memoryBytes).toBeLessThan(ring.pointCount * 12);
  });
});

describe("HashRing properties", () => {
  it("lookup is deterministic and independent of insertion order", () => {
    fc.assert(
      fc.property(
        distinctNodes(1, 10),
        keyList,
        fc.integer({ min: 1, max: 64 }),
        (nodes, keys, v) => {
          const a = new HashRing({ vnodes: v, nodes });
          const b = new HashRing({ vnodes: v });
          for (const n of [...nodes].reverse()) b.add(n);
          for (const k of keys) {
            expect(a.lookup(k)).toBe(a.lookup(k));
            expect(b.lookup(k)).toBe(a.lookup(k));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("adding a node moves only keys that now map to it", () => {
    fc.assert(
      fc.property(distinctNodes(2, 10), keyList, (all, keys) => {
        const [added, ...nodes] = all as [string, ...string[]];
        const before = new HashRing({ vnodes: 32, nodes });
        const after = before.clone().add(added);
        for (const k of keys) {
          const now = after.lookup(k);
          if (now !== before.lookup(k)) expect(now).toBe(added);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("removing a node moves only its keys", () => {
    fc.assert(
      fc.property(distinctNodes(2, 10), keyList, fc.nat(), (nodes, keys, pick) => {
        const removed = nodes[pick % nodes.length]!;
        const before = new HashRing({ vnodes: 32, nodes });
        const after = before.clone();
        after.remove(removed);
        for (const k of keys) {
          const was = before.lookup(k);
          if (was !== removed) expect(after.lookup(k)).toBe(was);
          else expect(after.lookup(k)).not.toBe(removed);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("reweighing moves keys only to (up) or only from (down) that node", () => {
    fc.assert(
      fc.property(
        distinctNodes(2, 8),
        keyList,
        fc.nat(),
        fc.double({ min: 0.1, max: 4, noNaN: true }),
        (nodes, keys, pick, w) => {
          const node = nodes[pick % nodes.length]!;
          const before = new HashRing({ vnodes: 32, nodes });
          const after = before.clone().reweigh(node, w);
          expect(after.pointCount - before.pointCount).toBe(after.pointsFor(w) - 32);
          for (const k of keys) {
            const [b, a] = [before.lookup(k), after.lookup(k)];
            if (a === b) continue;
            if (after.pointsFor(w) > 32) expect(a).toBe(node);
            else expect(b).toBe(node);
          }
          // The reweighed ring equals one built from scratch with that weight.
          const fresh = new HashRing({
            vnodes: 32,
            nodes: nodes.map((id) => ({ id, weight: id === node ? w : 1 })),
          });
          for (const k of keys) expect(after.lookup(k)).toBe(fresh.lookup(k));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a ring after add/remove equals one built from scratch", () => {
    fc.assert(
      fc.property(
        distinctNodes(3, 12),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        keyList,
        (nodes, keep, keys) => {
          const ring = new HashRing({ vnodes: 24, nodes });
          const kept = nodes.filter((_, i) => keep[i]);
          for (let i = 0; i < nodes.length; i++) if (!keep[i]) ring.remove(nodes[i]!);
          const fresh = new HashRing({ vnodes: 24, nodes: kept });
          expect(ring.pointCount).toBe(fresh.pointCount);
          for (const k of keys) expect(ring.lookup(k)).toBe(fresh.lookup(k));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("diff lists exactly the hashes whose owner changed, with from and to", () => {
    fc.assert(
      fc.property(distinctNodes(0, 8), distinctNodes(0, 8), keyList, (a, b, keys) => {
        const before = new HashRing({ vnodes: 16, nodes: a });
        const after = new HashRing({ vnodes: 16, nodes: b });
        const moves = HashRing.diff(before, after);
        for (let i = 0; i < moves.length; i++) {
          const m = moves[i]!;
          expect(m.start).toBeLessThanOrEqual(m.end);
          expect(m.from).not.toBe(m.to);
          if (i > 0) expect(m.start).toBeGreaterThan(moves[i - 1]!.end);
        }
        const probes = [...keys.map(murmur3), 0, 0xffffffff];
        for (let i = 0; i < before.pointCount; i++)
          probes.push(before.pointAt(i), before.pointAt(i) + 1);
        for (let i = 0; i < after.pointCount; i++)
          probes.push(after.pointAt(i), after.pointAt(i) + 1);
        for (const h of probes) {
          if (h > 0xffffffff) continue;
          const [was, now] = [before.lookupHash(h), after.lookupHash(h)];
          const m = moveFor(moves, h);
          if (was === now) expect(m).toBeUndefined();
          else expect(m && { from: m.from, to: m.to }).toEqual({ from: was, to: now });
        }
      }),
      { numRuns: 200 },
    );
  });

  it("diff matches lookups across weight changes and additions", () => {
    fc.assert(
      fc.property(
        distinctNodes(2, 6),
        fc.double({ min: 0.2, max: 3, noNaN: true }),
        keyList,
        (nodes, w, keys) => {
          const before = new HashRing({ vnodes: 16, nodes });
          const after = before.clone().reweigh(nodes[0]!, w).add("ZZ_new", w);
          const moves = HashRing.diff(before, after);
          for (const k of keys) {
            const h = murmur3(k);
            const [was, now] = [before.lookup(k), after.lookup(k)];
            const m = moveFor(moves, h);
            if (was === now) expect(m).toBeUndefined();
            else expect(m && [m.from, m.to]).toEqual([was, now]);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("lookup(key, n) returns min(n, size) distinct nodes, owner first", () => {
    fc.assert(
      fc.property(
        distinctNodes(1, 10),
        keyList,
        fc.integer({ min: 0, max: 12 }),
        (nodes, keys, n) => {
          const ring = new HashRing({ vnodes: 16, nodes });
          for (const k of keys) {
            const got = ring.lookup(k, n);
            expect(got.length).toBe(Math.min(n, nodes.length));
            expect(new Set(got).size).toBe(got.length);
            if (n > 0) expect(got[0]).toBe(ring.lookup(k));
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("HashRing distribution (100,000 keys, default vnodes)", () => {
  const keys = keysOf(100_000, "user:");

  it("10 nodes: max/mean <= 1.08", () => {
    const ring = new HashRing({ nodes: nodeNames(10) });
    expect(maxOverMean(ring, keys)).toBeLessThanOrEqual(1.08);
  });

  it("100 nodes: max/mean <= 1.15 (1,000 keys a node adds ~3% sampling noise)", () => {
    const ring = new HashRing({ nodes: nodeNames(100) });
    expect(maxOverMean(ring, keys)).toBeLessThanOrEqual(1.15);
  });

  it("weights: a node of weight 2 gets about twice the keys", () => {
    const ring = new HashRing({ nodes: [...nodeNames(9), { id: "big", weight: 2 }] });
    const share = (loads(ring, keys).get("big") ?? 0) / keys.length;
    expect(share).toBeGreaterThan((2 / 11) * 0.92);
    expect(share).toBeLessThan((2 / 11) * 1.08);
  });

  it("a 101st node takes about 1/101 of the keys, all from others", () => {
    const before = new HashRing({ nodes: nodeNames(100) });
    const after = before.clone().add("node-100");
    let moved = 0;
    for (const k of keys) {
      const now = after.lookup(k);
      if (now !== before.lookup(k)) {
        expect(now).toBe("node-100");
        moved++;
      }
    }
    expect(Math.abs(moved / keys.length - 1 / 101) / (1 / 101)).toBeLessThan(0.1);
  });
});
