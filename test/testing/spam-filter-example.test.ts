import { describe, expect, it } from "vitest";
import { simulateSpamFilter } from "../../examples/simulation/spam-filter.js";

describe("example: a spam filter tested in a simulated 3-node cluster", () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: spam is refused, ham arrives once and in order, floods are rate-limited`, async () => {
      const run = await simulateSpamFilter(seed);
      expect(run.violations, run.report).toEqual([]);
      expect(run.aliceSends).toEqual({
        "hi bob": "sent",
        "win the LOTTERY now": "forbidden_sender",
        "lunch at noon?": "sent",
        "cheap viagra": "forbidden_sender",
      });
      expect(run.flood).toEqual({ sent: 5, rate_limited: 15 });
      expect(run.bobReceived.filter((t) => !t.startsWith("flood"))).toEqual([
        "hi bob",
        "lunch at noon?",
      ]);
      expect(run.bobReceived.filter((t) => t.startsWith("flood"))).toEqual(
        [0, 1, 2, 3, 4].map((i) => `flood ${i}`),
      );
    });
  }
});
