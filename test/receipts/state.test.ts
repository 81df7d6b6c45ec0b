import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  effectiveState,
  groupStatus,
  RECEIPT_STATES,
  type ReceiptState,
  receiptRank,
  transition,
  userStatus,
  visibleStatus,
} from "../../src/receipts/index.js";

// The whole table, written out by hand: [state, event] -> next state, or "illegal".
const EXPECTED: Record<ReceiptState, Record<ReceiptState, ReceiptState | "illegal">> = {
  accepted: {
    accepted: "accepted",
    sent: "sent",
    delivered: "delivered",
    read: "read",
    failed: "failed",
  },
  sent: { accepted: "sent", sent: "sent", delivered: "delivered", read: "read", failed: "failed" },
  delivered: {
    accepted: "delivered",
    sent: "delivered",
    delivered: "delivered",
    read: "read",
    failed: "illegal",
  },
  read: { accepted: "read", sent: "read", delivered: "read", read: "read", failed: "illegal" },
  failed: {
    accepted: "failed",
    sent: "failed",
    delivered: "delivered",
    read: "read",
    failed: "failed",
  },
};

describe("transition (exhaustive)", () => {
  for (const state of RECEIPT_STATES) {
    for (const event of RECEIPT_STATES) {
      const want = EXPECTED[state][event];
      it(`${state} + ${event} -> ${want}`, () => {
        const r = transition(state, event);
        if (want === "illegal") {
          expect(r).toEqual({ error: "illegal_transition" });
        } else {
          expect(r).toEqual({ state: want, changed: want !== state });
        }
      });
    }
  }

  it("covers all 25 pairs and never throws on bad input", () => {
    expect(RECEIPT_STATES.length ** 2).toBe(25);
    expect(transition("bogus" as ReceiptState, "read")).toEqual({ error: "illegal_transition" });
    expect(transition("sent", "bogus" as ReceiptState)).toEqual({ error: "illegal_transition" });
  });

  it("returns frozen results (no allocation, no mutation by callers)", () => {
    expect(Object.isFrozen(transition("sent", "read"))).toBe(true);
    expect(transition("sent", "read")).toBe(transition("sent", "read"));
  });
});

const ordered: ReceiptState[] = ["accepted", "sent", "delivered", "read"];
const orderedEvent = fc.constantFrom(...ordered);
const anyEvent = fc.constantFrom(...RECEIPT_STATES);

/** Applies events from `start`, returning every state observed (errors keep the state). */
function run(start: ReceiptState, events: readonly ReceiptState[]): ReceiptState[] {
  const seen = [start];
  let s = start;
  for (const e of events) {
    const r = transition(s, e);
    if (r.error === undefined) s = r.state;
    seen.push(s);
  }
  return seen;
}

describe("transition (properties)", () => {
  it("any shuffled, duplicated sequence ends at the max, never observed going backwards", () => {
    // Events, each repeated 1-3 times, then shuffled.
    const shuffledWithDups = fc
      .array(fc.tuple(orderedEvent, fc.integer({ min: 1, max: 3 })), {
        minLength: 1,
        maxLength: 20,
      })
      .chain((pairs) => {
        const all = pairs.flatMap(([e, n]) => Array.from({ length: n }, () => e));
        return fc.tuple(
          fc.constant(pairs.map(([e]) => e)),
          fc.shuffledSubarray(all, { minLength: all.length }),
        );
      });
    fc.assert(
      fc.property(shuffledWithDups, ([distinct, shuffled]) => {
        const seen = run("sent", shuffled);
        for (let i = 1; i < seen.length; i++) {
          expect(receiptRank(seen[i]!)).toBeGreaterThanOrEqual(receiptRank(seen[i - 1]!));
        }
        const max = [...distinct, "sent" as const].reduce((a, b) =>
          receiptRank(b) > receiptRank(a) ? b : a,
        );
        expect(seen.at(-1)).toBe(max);
      }),
      { numRuns: 300 },
    );
  });

  it("the final state does not depend on the order (commutative and idempotent)", () => {
    fc.assert(
      fc.property(fc.array(orderedEvent, { maxLength: 20 }), (events) => {
        const a = run("accepted", events).at(-1);
        const b = run("accepted", [...events].reverse()).at(-1);
        const c = run("accepted", [...events, ...events]).at(-1);
        expect(a).toBe(b);
        expect(a).toBe(c);
      }),
      { numRuns: 200 },
    );
  });

  it("with failures mixed in, nothing goes backwards and failed is left only upwards", () => {
    fc.assert(
      fc.property(fc.array(anyEvent, { maxLength: 30 }), (events) => {
        const seen = run("sent", events);
        for (let i = 1; i < seen.length; i++) {
          const prev = seen[i - 1]!;
          const cur = seen[i]!;
          if (prev === "failed") expect(["failed", "delivered", "read"]).toContain(cur);
          else if (cur !== "failed")
            expect(receiptRank(cur)).toBeGreaterThanOrEqual(receiptRank(prev));
          else expect(["accepted", "sent"]).toContain(prev);
        }
        // The end is failed exactly when a failure came and no delivered/read at all.
        const reached = events.some((e) => e === "delivered" || e === "read");
        expect(seen.at(-1) === "failed").toBe(events.includes("failed") && !reached);
      }),
      { numRuns: 300 },
    );
  });
});

describe("derived statuses", () => {
  it("a user is delivered when any device has it and read when any read it", () => {
    expect(userStatus(["sent", "delivered"])).toBe("delivered");
    expect(userStatus(["delivered", "read", "sent"])).toBe("read");
    expect(userStatus(["sent", "failed"])).toBe("sent");
    expect(userStatus(["failed", "failed"])).toBe("failed");
    expect(userStatus([])).toBe("failed");
  });

  it("a group reaches a state when every member reached it; failed members are left out", () => {
    expect(groupStatus(["read", "delivered", "read"])).toBe("delivered");
    expect(groupStatus(["read", "read"])).toBe("read");
    expect(groupStatus(["read", "sent"])).toBe("sent");
    expect(groupStatus(["read", "failed"])).toBe("read");
    expect(groupStatus(["failed"])).toBe("failed");
  });

  it("hidden read receipts show read as delivered", () => {
    expect(visibleStatus("read", false)).toBe("delivered");
    expect(visibleStatus("read", true)).toBe("read");
    expect(visibleStatus("sent", false)).toBe("sent");
  });

  it("a watermark raises a device to read when it covers the seq, never a failed one", () => {
    expect(effectiveState("sent", 3, { upTo: 3, at: 0 })).toBe("read");
    expect(effectiveState("sent", 4, { upTo: 3, at: 0 })).toBe("sent");
    expect(effectiveState("failed", 1, { upTo: 3, at: 0 })).toBe("failed");
    expect(effectiveState("delivered", 1, undefined)).toBe("delivered");
  });

  it("user status is the max over devices for any states (property)", () => {
    fc.assert(
      fc.property(fc.array(orderedEvent, { minLength: 1, maxLength: 6 }), (states) => {
        const max = Math.max(...states.map(receiptRank));
        expect(receiptRank(userStatus(states))).toBe(max);
        expect(receiptRank(groupStatus(states))).toBe(Math.min(...states.map(receiptRank)));
      }),
      { numRuns: 200 },
    );
  });
});
