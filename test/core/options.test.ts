import { describe, expect, it } from "vitest";
import { z } from "zod";
import { assertInteger, isRelayError, parseOptions, RelayError } from "../../src/core/index.js";

describe("options validation", () => {
  const schema = z.object({ maxAttempts: z.number().int().min(1).default(5) });

  it("applies defaults", () => {
    expect(parseOptions(schema, undefined, "Queue")).toEqual({ maxAttempts: 5 });
  });

  it("throws invalid_option with one message shape", () => {
    try {
      parseOptions(schema, { maxAttempts: 0 }, "Queue");
      expect.unreachable();
    } catch (e) {
      expect(isRelayError(e, "invalid_option")).toBe(true);
      expect((e as RelayError).message).toBe(
        "Queue: Expected `maxAttempts` to be a number >= 1, got `0` (number)",
      );
      expect((e as RelayError).name).toBe("RelayError");
    }
    expect(() => assertInteger("Ring", "vnodes", 1.5, 1)).toThrow(
      "Ring: Expected `vnodes` to be an integer >= 1, got `1.5` (number)",
    );
  });

  it("RelayError keeps its cause", () => {
    const cause = new Error("boom");
    const e = new RelayError("store_unavailable", "redis down", { cause });
    expect(e.cause).toBe(cause);
    expect(e.code).toBe("store_unavailable");
  });
});
