import { describe, expect, it } from "vitest";
import type { ConversationId, DeviceKey, MessageId, UserId } from "../../src/core/index.js";
import {
  checkBounded,
  checkFifo,
  checkNoDuplicates,
  checkNoLoss,
  checkPresence,
  checkReceiptsMonotonic,
  type DeviceView,
  type SentMessage,
} from "../../src/testing/index.js";

const conv = "dm:alice:bob" as ConversationId;
const alice = "alice" as UserId;
const msg = (id: string, seq: number) => ({
  id: id as MessageId,
  from: alice,
  conversation: conv,
  seq,
});
const view = (device: string, over: Partial<DeviceView> = {}): DeviceView => ({
  device: device as DeviceKey,
  online: true,
  received: [],
  receipts: [],
  ...over,
});
const sent = (id: string, recipients: string[]): SentMessage => ({
  id: id as MessageId,
  clientId: `c-${id}` as never,
  from: alice,
  sender: "alice/d1" as DeviceKey,
  recipients: recipients as DeviceKey[],
});

describe("invariant checkers", () => {
  it("no-loss: a missing delivery is a violation unless the sender got failed or the device is offline", () => {
    const m = [sent("m1", ["bob/d1", "bob/d2"])];
    const got = view("bob/d1", { received: [msg("m1", 1)] });
    expect(checkNoLoss(m, [got, view("bob/d2")])).toHaveLength(1);
    expect(checkNoLoss(m, [got, view("bob/d2", { online: false })])).toEqual([]);
    const failed = view("alice/d1", { receipts: [{ status: "failed", ids: ["m1"] }] });
    expect(checkNoLoss(m, [got, view("bob/d2"), failed])).toEqual([]);
  });

  it("no-duplicates", () => {
    expect(
      checkNoDuplicates([view("bob/d1", { received: [msg("m1", 1), msg("m1", 1)] })]),
    ).toHaveLength(1);
    expect(checkNoDuplicates([view("bob/d1", { received: [msg("m1", 1), msg("m2", 2)] })])).toEqual(
      [],
    );
  });

  it("fifo: seq must increase per (conversation, sender) at a device", () => {
    expect(
      checkFifo([view("bob/d1", { received: [msg("m2", 2), msg("m1", 1)] })])[0]!.invariant,
    ).toBe("fifo");
    expect(checkFifo([view("bob/d1", { received: [msg("m1", 1), msg("m3", 3)] })])).toEqual([]);
  });

  it("receipts: read then delivered goes backwards; failed after every recipient user had it too", () => {
    const back = view("alice/d1", {
      receipts: [
        { status: "read", ids: ["m1"], by: "bob", device: "d1" },
        { status: "delivered", ids: ["m1"], by: "bob", device: "d1" },
      ],
    });
    expect(checkReceiptsMonotonic([back])).toHaveLength(1);
    const forward = view("alice/d1", {
      receipts: [
        { status: "delivered", ids: ["m1"], by: "bob", device: "d1" },
        { status: "read", ids: ["m1"], by: "bob", device: "d1" },
        { status: "delivered", ids: ["m1"], by: "bob", device: "d2" },
      ],
    });
    expect(checkReceiptsMonotonic([forward])).toEqual([]);
    const falseFailure = view("alice/d1", {
      receipts: [
        { status: "delivered", ids: ["m1"], by: "bob", device: "d1" },
        { status: "failed", ids: ["m1"] },
      ],
    });
    expect(checkReceiptsMonotonic([falseFailure], [sent("m1", ["bob/d1"])])).toHaveLength(1);
    // One device of the recipient having it is enough: failed after that is false too.
    expect(checkReceiptsMonotonic([falseFailure], [sent("m1", ["bob/d1", "bob/d2"])])).toHaveLength(
      1,
    );
    // In a group, failed for a member none of whose devices got it is true.
    expect(checkReceiptsMonotonic([falseFailure], [sent("m1", ["bob/d1", "carol/d1"])])).toEqual(
      [],
    );
  });

  it("presence: the last observed status must match the truth", () => {
    const truth = (u: UserId) => u === "bob";
    const viewer = "carol/d1" as DeviceKey;
    expect(
      checkPresence(
        [
          { viewer, subject: "bob" as UserId, seen: "online" },
          { viewer, subject: "dave" as UserId, seen: undefined },
        ],
        truth,
      ),
    ).toEqual([]);
    expect(
      checkPresence([{ viewer, subject: "bob" as UserId, seen: undefined }], truth),
    ).toHaveLength(1);
    expect(
      checkPresence([{ viewer, subject: "dave" as UserId, seen: "online" }], truth),
    ).toHaveLength(1);
  });

  it("bounded state: sizes over their limit", () => {
    expect(checkBounded({ depth: 0, stored: 3 })).toEqual([
      { invariant: "bounded-state", message: "stored is 3 after quiet (limit 0)" },
    ]);
    expect(checkBounded({ stored: 3 }, { stored: 5 })).toEqual([]);
  });
});
