import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { directConversation, directPeers, type UserId } from "../../src/core/ids.js";
import { DEFAULT_LIMITS } from "../../src/protocol/index.js";

/** Any valid user id (the protocol's default id rule), with `:` common. */
const anyUser = fc
  .stringMatching(/^[A-Za-z0-9_.:@-]{1,128}$/)
  .map((s) => s as UserId)
  .filter((s) => DEFAULT_LIMITS.idPattern.test(s));
const colonHeavy = fc
  .array(fc.constantFrom("x", "y", "z", ":", "1", ":"), { minLength: 1, maxLength: 8 })
  .map((a) => a.join("") as UserId);
const user = fc.oneof(anyUser, colonHeavy);

describe("1:1 conversation ids", () => {
  it("are the same from either side and read back to the pair", () => {
    fc.assert(
      fc.property(user, user, (a, b) => {
        const c = directConversation(a, b);
        expect(directConversation(b, a)).toBe(c);
        const pair = directPeers(c);
        expect(pair).toBeDefined();
        expect([...pair!].sort()).toEqual([a, b].sort());
      }),
      { numRuns: 2000 },
    );
  });

  it("never collide: two different pairs give two different ids", () => {
    fc.assert(
      fc.property(user, user, user, user, (a, b, c, d) => {
        const same = (a === c && b === d) || (a === d && b === c);
        fc.pre(!same);
        expect(directConversation(a, b)).not.toBe(directConversation(c, d));
      }),
      { numRuns: 5000 },
    );
  });

  it("the pair that used to collide: x with y:z, and x:y with z", () => {
    const one = directConversation("x" as UserId, "y:z" as UserId);
    const two = directConversation("x:y" as UserId, "z" as UserId);
    expect(one).not.toBe(two);
    expect(directPeers(one)).toEqual(["x", "y:z"]);
    expect(directPeers(two)).toEqual(["x:y", "z"]);
    // Ids without a colon keep their plain form.
    expect(directConversation("bob" as UserId, "alice" as UserId)).toBe("dm:alice:bob");
  });

  it("reads back nothing that is not a canonical 1:1 id", () => {
    for (const s of [
      "g:team",
      "dm:",
      "dm:a",
      "dm:b:a",
      "dm:a:b:c",
      "dmx:1:a:b",
      "dmx:x:a:b",
      "dmx:9:a:b",
      "dmx:3:x:y:",
    ]) {
      expect(directPeers(s)).toBeUndefined();
    }
  });
});
