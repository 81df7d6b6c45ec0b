import { describe, it } from "vitest";
import { MemoryDeviceRegistry } from "../../src/router/device-registry.js";
import { deviceRegistryConformance } from "../../src/testing/conformance/device-registry.js";

describe("MemoryDeviceRegistry conformance", () => {
  for (const c of deviceRegistryConformance({ create: async () => new MemoryDeviceRegistry() })) {
    it(c.name, c.run);
  }
});
