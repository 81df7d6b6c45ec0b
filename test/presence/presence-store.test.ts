import { describe, it } from "vitest";
import { MemoryPresenceStore } from "../../src/presence/index.js";
import { presenceStoreConformance } from "../../src/testing/conformance/presence-store.js";

describe("MemoryPresenceStore conformance", () => {
  for (const c of presenceStoreConformance({ create: async () => new MemoryPresenceStore() })) {
    it(c.name, c.run);
  }
});
