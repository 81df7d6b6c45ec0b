import { describe, it } from "vitest";
import { MemoryMessageStore } from "../../src/router/message-store.js";
import { messageStoreConformance } from "../../src/testing/conformance/message-store.js";

describe("MemoryMessageStore conformance", () => {
  for (const c of messageStoreConformance({
    create: async (retention) => new MemoryMessageStore(retention),
  })) {
    it(c.name, c.run);
  }
});
