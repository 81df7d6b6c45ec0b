import { describe, expect, it } from "vitest";
import { ManualClock, nodeId } from "../../src/core/index.js";
import { MemoryNodeRegistry } from "../../src/discovery/index.js";
import { nodeRegistryConformance } from "../../src/testing/conformance/node-registry.js";

describe("MemoryNodeRegistry conformance", () => {
  for (const c of nodeRegistryConformance({
    create: async ({ clock }) => new MemoryNodeRegistry({ clock }),
  })) {
    it(c.name, c.run);
  }
});

describe("MemoryNodeRegistry", () => {
  it("rejects a bad clock option with invalid_option", () => {
    expect(() => new MemoryNodeRegistry({ clock: 5 as never })).toThrow(
      expect.objectContaining({ code: "invalid_option" }),
    );
  });

  it("keeps its own copy of meta", async () => {
    const clock = new ManualClock();
    const reg = new MemoryNodeRegistry({ clock });
    const meta = { addr: "x" };
    await reg.register(nodeId("n1"), { ttlMs: 10, meta });
    meta.addr = "changed";
    expect((await reg.live())[0]?.meta).toEqual({ addr: "x" });
  });
});
