import { describe, it } from "vitest";
import { MemorySessionDirectory } from "../../src/router/session-directory.js";
import { sessionDirectoryConformance } from "../../src/testing/conformance/session-directory.js";

describe("MemorySessionDirectory conformance", () => {
  for (const c of sessionDirectoryConformance({
    create: async () => new MemorySessionDirectory(),
  })) {
    it(c.name, c.run);
  }
});
