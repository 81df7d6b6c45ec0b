import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type GroupId, groupId, type NodeId, nodeId } from "../../src/core/index.js";
import { GroupSharder } from "../../src/groups/index.js";
import { HashRing } from "../../src/sharding/index.js";

const ringOf = (names: readonly string[]) =>
  new HashRing<NodeId>({ vnodes: 64, nodes: names.map(nodeId) });

describe("GroupSharder", () => {
  it("ownerOf follows the ring; isLocal is true only on the owner", () => {
    const ring = ringOf(["n1", "n2", "n3"]);
    const sharders = ["n1", "n2", "n3"].map((n) => new GroupSharder({ ring, nodeId: nodeId(n) }));
    for (let i = 0; i < 200; i++) {
      const g = groupId(`g${i}`);
      const owner = ring.lookup(g);
      for (const s of sharders) {
        expect(s.ownerOf(g)).toBe(owner);
        expect(s.isLocal(g)).toBe(s.nodeId === owner);
      }
      expect(sharders.filter((s) => s.isLocal(g))).toHaveLength(1);
    }
    const empty = new GroupSharder({ ring: new HashRing<NodeId>(), nodeId: nodeId("n1") });
    expect(empty.ownerOf(groupId("g"))).toBeUndefined();
    expect(empty.isLocal(groupId("g"))).toBe(false);
  });

  it("setRing swaps the ring", () => {
    const s = new GroupSharder({ ring: ringOf(["n1"]), nodeId: nodeId("n1") });
    expect(s.isLocal(groupId("g"))).toBe(true);
    s.setRing(ringOf(["n2"]));
    expect(s.ownerOf(groupId("g"))).toBe("n2");
  });

  it("handover lists exactly the groups whose owner changed, from and to", () => {
    const names = fc.uniqueArray(fc.constantFrom("a", "b", "c", "d", "e", "f", "g"), {
      maxLength: 7,
    });
    fc.assert(
      fc.property(
        names,
        names,
        fc.uniqueArray(fc.string({ maxLength: 10 }), { maxLength: 200 }),
        (a, b, ids) => {
          const before = ringOf(a);
          const after = ringOf(b);
          const groups = ids.map(groupId);
          const s = new GroupSharder({ ring: after, nodeId: nodeId("a") });
          const got = s.handover(before, after, groups);
          const want = groups
            .filter((g) => before.lookup(g) !== after.lookup(g))
            .map((g: GroupId) => ({ groupId: g, from: before.lookup(g), to: after.lookup(g) }));
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a joining node takes about a quarter of 4,000 groups from three, only to itself", () => {
    const before = ringOf(["n1", "n2", "n3"]);
    const after = before.clone().add(nodeId("n4"));
    const groups = Array.from({ length: 4000 }, (_, i) => groupId(`group-${i}`));
    const moves = new GroupSharder({ ring: after, nodeId: nodeId("n4") }).handover(
      before,
      after,
      groups,
    );
    expect(moves.every((m) => m.to === "n4" && m.from !== "n4")).toBe(true);
    expect(moves.length).toBeGreaterThan(4000 * 0.18);
    expect(moves.length).toBeLessThan(4000 * 0.32);
  });
});
