import { describe, it } from "vitest";
import { MemoryReceiptStore } from "../../src/receipts/index.js";
import { receiptStoreConformance } from "../../src/testing/conformance/receipt-store.js";

describe("MemoryReceiptStore", () => {
  for (const c of receiptStoreConformance({ create: async () => new MemoryReceiptStore() })) {
    it(c.name, c.run);
  }
});
