import { describe, it } from "vitest";
import { MemoryNodeBus } from "../../src/router/node-bus.js";
import { nodeBusConformance } from "../../src/testing/conformance/node-bus.js";

describe("MemoryNodeBus conformance", () => {
  for (const c of nodeBusConformance({
    create: async () => new MemoryNodeBus(),
    dispose: (bus) => bus.close(),
  })) {
    it(c.name, c.run);
  }
});
