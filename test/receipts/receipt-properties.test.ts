import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { DeviceId } from "../../src/core/index.js";
import { receiptRank } from "../../src/receipts/index.js";
import {
  alice,
  b1,
  b2,
  bob,
  c1,
  carol,
  dev,
  dm,
  envelope,
  ids,
  setup,
  team,
  teamConv,
} from "./helpers.js";

type Op =
  | { kind: "track"; seq: number }
  | { kind: "ack"; seq: number; device: DeviceId; status: "delivered" | "read" }
  | { kind: "watermark"; device: DeviceId; upTo: number };

const MESSAGES = 4;
const device = fc.constantFrom(b1, b2);
const seq = fc.integer({ min: 1, max: MESSAGES });
const receipt: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("ack" as const),
    seq,
    device,
    status: fc.constantFrom("delivered" as const, "read" as const),
  }),
  fc.record({ kind: fc.constant("watermark" as const), device, upTo: seq }),
);
// Every message is tracked once; receipts (with duplicates) may come before or after.
const scenario = fc
  .array(fc.tuple(receipt, fc.integer({ min: 1, max: 3 })), { maxLength: 25 })
  .chain((rs) => {
    const ops: Op[] = rs.flatMap(([r, n]) => Array.from({ length: n }, () => r));
    for (let s = 1; s <= MESSAGES; s++) ops.push({ kind: "track", seq: s });
    return fc.shuffledSubarray(ops, { minLength: ops.length });
  });

describe("ReceiptTracker (properties)", () => {
  it("any shuffled, duplicated receipts: the sender ends at the max, never going backwards; watermarks only move forward", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (ops) => {
        const { tracker, notices } = setup({ clampWatermarks: false });
        for (const op of ops) {
          if (op.kind === "track") {
            await tracker.track(envelope(`m${op.seq}`, op.seq), [dev(bob, b1), dev(bob, b2)]);
          } else if (op.kind === "ack") {
            await tracker.ack(bob, op.device, op.status, ids(`m${op.seq}`));
          } else {
            await tracker.watermark(bob, op.device, dm, op.upTo);
          }
        }
        // What alice saw, per message, in order.
        const seen = new Map<number, string[]>();
        const syncPointers: number[] = [];
        for (const n of notices) {
          const f = n.frame;
          if (f.type !== "receipt" || f.status === "sent" || f.status === "failed") continue;
          if (n.toUser === bob) {
            if ("upTo" in f) syncPointers.push(f.upTo);
            continue;
          }
          expect(n.toUser).toBe(alice);
          const covered =
            "upTo" in f
              ? Array.from({ length: f.upTo }, (_, i) => i + 1)
              : f.ids.map((id) => Number(id.slice(1)));
          for (const s of covered) seen.set(s, [...(seen.get(s) ?? []), f.status]);
        }
        for (let s = 1; s <= MESSAGES; s++) {
          const got = seen.get(s) ?? [];
          // Never read then delivered. (A watermark frame covers seqs the sender's client may
          // not have yet; a later tick for such a message can repeat `read`, never lower it.)
          for (let i = 1; i < got.length; i++) {
            expect(receiptRank(got[i] as "read")).toBeGreaterThanOrEqual(
              receiptRank(got[i - 1] as "read"),
            );
          }
          expect(got.filter((x) => x === "delivered").length).toBeLessThanOrEqual(1);
          const read = ops.some(
            (o) =>
              (o.kind === "ack" && o.seq === s && o.status === "read") ||
              (o.kind === "watermark" && o.upTo >= s),
          );
          const delivered = ops.some((o) => o.kind === "ack" && o.seq === s);
          expect(got.at(-1)).toBe(read ? "read" : delivered ? "delivered" : undefined);
        }
        for (let i = 1; i < syncPointers.length; i++) {
          expect(syncPointers[i]).toBeGreaterThan(syncPointers[i - 1]!);
        }
        // Nothing is left buffered, and read messages are released.
        const size = await tracker.size();
        expect(size.buffered).toBe(0);
        tracker.close();
      }),
      { numRuns: 200 },
    );
  });
});

describe("ReceiptTracker aggregate groups (properties)", () => {
  const members = [dev(bob, b1), dev(bob, b2), dev(carol, c1)];
  const groupOp = fc.oneof(
    fc.record({
      kind: fc.constant("ack" as const),
      who: fc.constantFrom<[typeof bob, DeviceId]>([bob, b1], [bob, b2], [carol, c1]),
      status: fc.constantFrom("delivered" as const, "read" as const),
    }),
    fc.record({
      kind: fc.constant("watermark" as const),
      who: fc.constantFrom<[typeof bob, DeviceId]>([bob, b1], [carol, c1]),
    }),
  );

  it("the sender sees at most one delivered then one read tick, read only once every member read", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(groupOp, { maxLength: 12 }), fc.nat(12), async (ops, trackAt) => {
        const { tracker, notices } = setup({ groupPolicy: "aggregate", clampWatermarks: false });
        const track = () => tracker.track(envelope("g1", 1, { group: team }), members);
        for (let i = 0; i < ops.length; i++) {
          if (i === trackAt) await track();
          const op = ops[i]!;
          if (op.kind === "ack") await tracker.ack(op.who[0], op.who[1], op.status, ids("g1"));
          else await tracker.watermark(op.who[0], op.who[1], teamConv, 1);
        }
        if (trackAt >= ops.length) await track();
        const seen = notices.filter((n) => n.toUser === alice).map((n) => n.frame.status);
        expect(["", "delivered", "read", "delivered,read"]).toContain(seen.join(","));
        const readBy = (u: string) =>
          ops.some((o) => o.who[0] === u && (o.kind === "watermark" || o.status === "read"));
        const hasIt = (u: string) => ops.some((o) => o.who[0] === u);
        expect(seen.includes("read")).toBe(readBy(bob) && readBy(carol));
        expect(seen.length > 0).toBe(hasIt(bob) && hasIt(carol));
        tracker.close();
      }),
      { numRuns: 200 },
    );
  });
});
