import { describe, it } from "vitest";
import { MemoryGroupStore } from "../../src/groups/index.js";
import { groupStoreConformance } from "../../src/testing/conformance/group-store.js";

describe("MemoryGroupStore conformance", () => {
  for (const c of groupStoreConformance({ create: async () => new MemoryGroupStore() })) {
    it(c.name, c.run);
  }
});
