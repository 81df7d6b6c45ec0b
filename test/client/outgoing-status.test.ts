import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advanceStatus,
  backoffDelay,
  DEFAULT_RECONNECT,
  type OutgoingStatus,
  RecentIds,
} from "../../src/client/index.js";
import { seededRandom } from "../../src/core/index.js";

const STATUSES: OutgoingStatus[] = ["pending", "sent", "delivered", "read", "failed"];
const rank = (s: OutgoingStatus) => ["pending", "sent", "delivered", "read"].indexOf(s);

describe("advanceStatus", () => {
  it("moves forward only, and read implies delivered", () => {
    expect(advanceStatus("pending", "sent")).toBe("sent");
    expect(advanceStatus("sent", "read")).toBe("read");
    expect(advanceStatus("read", "delivered")).toBe("read");
    expect(advanceStatus("delivered", "sent")).toBe("delivered");
    expect(advanceStatus("sent", "failed")).toBe("failed");
    expect(advanceStatus("delivered", "failed")).toBe("delivered");
    expect(advanceStatus("failed", "sent")).toBe("failed");
    expect(advanceStatus("failed", "delivered")).toBe("delivered");
  });

  it("is idempotent and never goes backwards over any event sequence", () => {
    const status = fc.constantFrom(...STATUSES);
    fc.assert(
      fc.property(fc.array(status, { maxLength: 20 }), (events) => {
        let s: OutgoingStatus = "pending";
        let best = 0;
        for (const e of events) {
          const next = advanceStatus(s, e);
          expect(advanceStatus(next, e)).toBe(next);
          if (next !== "failed") {
            expect(rank(next)).toBeGreaterThanOrEqual(best);
            best = rank(next);
          } else {
            expect(best).toBeLessThan(rank("delivered"));
          }
          s = next;
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("backoffDelay", () => {
  it("grows exponentially, stays within the cap and the jitter band", () => {
    const r = seededRandom(1);
    const policy = { ...DEFAULT_RECONNECT, initialDelay: 100, maxDelay: 5_000, jitter: 0.5 };
    for (let attempt = 0; attempt < 20; attempt++) {
      const full = Math.min(5_000, 100 * 2 ** attempt);
      const d = backoffDelay(attempt, policy, r);
      expect(d).toBeLessThanOrEqual(full);
      expect(d).toBeGreaterThanOrEqual(Math.floor(full * 0.5));
    }
    expect(backoffDelay(3, { ...policy, jitter: 0 }, r)).toBe(800);
  });
});

describe("RecentIds", () => {
  it("forgets the oldest id beyond its capacity", () => {
    const ids = new RecentIds(2);
    expect(ids.add("a")).toBe(true);
    expect(ids.add("a")).toBe(false);
    ids.add("b");
    ids.add("c");
    expect(ids.has("a")).toBe(false);
    expect(ids.has("c")).toBe(true);
    expect(ids.size).toBe(2);
  });
});
