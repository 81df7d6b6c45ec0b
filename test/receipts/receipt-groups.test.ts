import { describe, expect, it } from "vitest";
import { deviceKey, groupId, messageId } from "../../src/core/index.js";
import {
  a2,
  alice,
  b1,
  b2,
  bob,
  c1,
  carol,
  d1,
  dave,
  dev,
  envelope,
  ids,
  setup,
  team,
  teamConv,
} from "./helpers.js";

// Alice sends to the group; the router froze bob (2 devices) and carol (1) as recipients.
const members = [dev(alice, a2), dev(bob, b1), dev(bob, b2), dev(carol, c1)];
const toSender = (ns: { toUser: string; frame: { status: string } }[]) =>
  ns.filter((n) => n.toUser === alice).map((n) => n.frame);

describe("group receipts, policy none (default)", () => {
  it("the sender gets no delivered/read ticks; readers still sync their devices", async () => {
    const { tracker, take, released } = setup();
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.ack(bob, b1, "delivered", ids("g1"));
    await tracker.ack(carol, c1, "read", ids("g1"));
    await tracker.ack(bob, b2, "read", ids("g1"));
    const n = take();
    expect(toSender(n)).toEqual([]);
    expect(n.map((x) => [x.toUser, x.exceptDevice])).toEqual([
      [carol, c1],
      [bob, b2],
    ]);
    expect(released).toEqual([{ ids: ["g1"], reason: "final" }]);
  });

  it("still reports failures to the sender", async () => {
    const { tracker, take } = setup();
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.failed(messageId("g1"), deviceKey(carol, c1), "attempts_exhausted");
    expect(toSender(take())).toMatchObject([{ status: "failed", ids: ["g1"], clientId: "c-g1" }]);
  });
});

describe("group receipts, policy aggregate", () => {
  it("one delivered tick when every member has it, one read tick when all read", async () => {
    const { tracker, take, clock } = setup({ groupPolicy: "aggregate" });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.ack(bob, b1, "delivered", ids("g1"));
    expect(toSender(take())).toEqual([]);
    clock.advance(7);
    await tracker.ack(carol, c1, "delivered", ids("g1"));
    expect(toSender(take())).toEqual([
      { type: "receipt", status: "delivered", ids: ["g1"], by: team, ts: 1007 },
    ]);
    await tracker.ack(carol, c1, "read", ids("g1"));
    expect(toSender(take())).toEqual([]);
    // Bob reads on his second device: every member has read.
    await tracker.ack(bob, b2, "read", ids("g1"));
    expect(toSender(take())).toEqual([
      { type: "receipt", status: "read", ids: ["g1"], by: team, ts: 1007 },
    ]);
  });

  it("a watermark can complete the aggregate", async () => {
    const { tracker, take } = setup({ groupPolicy: "aggregate", clampWatermarks: false });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.track(envelope("g2", 2, { group: team }), members);
    await tracker.ack(carol, c1, "read", ids("g1", "g2"));
    take();
    await tracker.watermark(bob, b1, teamConv, 2);
    // Read jumped over delivered: one read tick per message, batched.
    expect(toSender(take())).toEqual([
      { type: "receipt", status: "read", ids: ["g1", "g2"], by: team, ts: 1000 },
    ]);
  });

  it("a member who hides read receipts holds the aggregate at delivered", async () => {
    const { tracker, take } = setup({ groupPolicy: "aggregate", readReceipts: (u) => u !== carol });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.ack(carol, c1, "read", ids("g1"));
    await tracker.ack(bob, b1, "read", ids("g1"));
    expect(toSender(take()).map((f) => f.status)).toEqual(["delivered"]);
  });

  it("a member whose devices all failed is left out of the aggregate", async () => {
    const { tracker, take } = setup({ groupPolicy: "aggregate" });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.ack(bob, b1, "delivered", ids("g1"));
    await tracker.failed(messageId("g1"), deviceKey(carol, c1), "ttl_expired");
    expect(toSender(take()).map((f) => f.status)).toEqual(["failed", "delivered"]);
  });
});

describe("group receipts, policy per-member", () => {
  it("ticks per member, and info with times for the frozen recipient set", async () => {
    const { tracker, take, clock } = setup({
      groupPolicy: (g) => (g === team ? "per-member" : "none"),
    });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    clock.advance(10);
    await tracker.ack(bob, b1, "delivered", ids("g1"));
    clock.advance(10);
    await tracker.ack(carol, c1, "read", ids("g1"));
    expect(toSender(take())).toEqual([
      { type: "receipt", status: "delivered", ids: ["g1"], by: bob, device: b1, ts: 1010 },
      { type: "receipt", status: "read", ids: ["g1"], by: carol, device: c1, ts: 1020 },
    ]);
    // Dave joined after the send: not a recipient of g1.
    const late = await tracker.ack(dave, d1, "read", ids("g1"));
    expect(late.ignored).toEqual([{ id: "g1", reason: "not_recipient" }]);

    const info = await tracker.info(messageId("g1"));
    expect(info).toMatchObject({
      id: "g1",
      from: alice,
      group: team,
      mode: "per-member",
      status: "delivered",
    });
    expect(info?.members).toEqual([
      {
        userId: bob,
        status: "delivered",
        deliveredAt: 1010,
        devices: [
          { deviceId: b1, state: "delivered", deliveredAt: 1010 },
          { deviceId: b2, state: "sent" },
        ],
      },
      {
        userId: carol,
        status: "read",
        deliveredAt: 1020,
        readAt: 1020,
        devices: [{ deviceId: c1, state: "read", deliveredAt: 1020, readAt: 1020 }],
      },
    ]);

    // A watermark tells the sender in one frame and shows in info.
    clock.advance(10);
    await tracker.watermark(bob, b2, teamConv, 1);
    expect(toSender(take())).toEqual([
      {
        type: "receipt",
        status: "read",
        conversation: teamConv,
        upTo: 1,
        by: bob,
        device: b2,
        ts: 1030,
      },
    ]);
    // Everyone read: released, info is gone.
    expect(await tracker.info(messageId("g1"))).toBeUndefined();
  });

  it("info before everyone read: watermark reads show with the pointer's time", async () => {
    const { tracker, clock } = setup({ groupPolicy: "per-member", clampWatermarks: false });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    clock.advance(5);
    await tracker.watermark(bob, b1, teamConv, 1);
    const info = await tracker.info(messageId("g1"));
    expect(info?.members.find((m) => m.userId === bob)).toMatchObject({
      status: "read",
      readAt: 1005,
      deliveredAt: 1005,
    });
    expect(info?.members.find((m) => m.userId === carol)?.status).toBe("sent");
  });

  it("hides a private member's read in ticks and info", async () => {
    const { tracker, take } = setup({ groupPolicy: "per-member", readReceipts: (u) => u !== bob });
    await tracker.track(envelope("g1", 1, { group: team }), members);
    await tracker.ack(bob, b1, "read", ids("g1"));
    expect(toSender(take()).map((f) => f.status)).toEqual(["delivered"]);
    const bobInfo = (await tracker.info(messageId("g1")))?.members.find((m) => m.userId === bob);
    expect(bobInfo?.status).toBe("delivered");
    expect(bobInfo?.readAt).toBeUndefined();
  });

  it("a per-message policy overrides the global one", async () => {
    const { tracker, take } = setup({ groupPolicy: "none" });
    await tracker.track(envelope("g1", 1, { group: groupId("other") }), members, {
      policy: "per-member",
    });
    await tracker.ack(bob, b1, "delivered", ids("g1"));
    expect(toSender(take())).toHaveLength(1);
  });
});
