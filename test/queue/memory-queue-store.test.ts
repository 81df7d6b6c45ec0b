import { describe, it } from "vitest";
import { MemoryQueueStore } from "../../src/queue/index.js";
import { queueStoreConformance } from "../../src/testing/conformance/queue-store.js";

describe("MemoryQueueStore", () => {
  for (const c of queueStoreConformance({ create: async () => new MemoryQueueStore() })) {
    it(c.name, c.run);
  }
});
