import { describe, it } from "vitest";
import { MemorySequenceStore } from "../../src/router/sequence-store.js";
import { sequenceStoreConformance } from "../../src/testing/conformance/sequence-store.js";

describe("MemorySequenceStore conformance", () => {
  for (const c of sequenceStoreConformance({ create: async () => new MemorySequenceStore() })) {
    it(c.name, c.run);
  }
});
