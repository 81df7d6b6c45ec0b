import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DeviceKey } from "../../src/core/index.js";
import { matchRoster } from "../../src/queue/roster-match.js";

const without = <T>(xs: readonly T[], i: number): T[] => [...xs.slice(0, i), ...xs.slice(i + 1)];
/** Distinct keys, shuffled by fast-check. */
const listArb = fc
  .uniqueArray(fc.integer({ min: 0, max: 60 }), { minLength: 2, maxLength: 24 })
  .map((xs) => xs.map((x) => `u${x}/d1` as DeviceKey));

describe("matchRoster", () => {
  it("finds the same list, the list without one device, and two senders' lists of one group", () => {
    fc.assert(
      fc.property(listArb, fc.nat(), fc.nat(), (all, x, y) => {
        const a = x % all.length;
        const b = y % all.length;
        expect(matchRoster(all, [...all])).toEqual({ kind: "same" });
        expect(matchRoster(all, without(all, a))).toEqual({ kind: "skip", skip: a });
        const r = matchRoster(without(all, a), without(all, b));
        if (a === b) expect(r).toEqual({ kind: "same" });
        else {
          // The group's list is learnt back (two neighbours' order is a guess: either is
          // right), and the recipients are it without the sender.
          expect(r?.kind).toBe("union");
          const keys = (r as { readonly keys: readonly DeviceKey[] }).keys;
          if (Math.abs(a - b) > 1) expect(keys).toEqual(all);
          else expect([...keys].sort()).toEqual([...all].sort());
          expect(
            without(
              (r as { readonly keys: readonly DeviceKey[] }).keys,
              (r as { skip: number }).skip,
            ),
          ).toEqual(without(all, b));
        }
      }),
    );
  });

  it("never claims more than is true, for any two lists", () => {
    fc.assert(
      fc.property(listArb, listArb, (keys, recipients) => {
        const r = matchRoster(keys, recipients);
        if (r === undefined) return;
        if (r.kind === "same") expect(recipients).toEqual(keys);
        else if (r.kind === "skip") expect(without(keys, r.skip)).toEqual(recipients);
        else {
          expect(without(r.keys, r.skip)).toEqual(recipients);
          // The union is the roster's list with one device put in.
          expect(r.keys.length).toBe(keys.length + 1);
          expect(r.keys.filter((k) => keys.includes(k))).toEqual(keys);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
