import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { deviceId, userId } from "../../src/core/ids.js";
import { deliveryQueue } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

const seqs = (frames: readonly { type: string; status?: string; seq?: number }[]) =>
  frames.filter((f) => f.type === "receipt" && f.status === "sent").map((f) => f.seq);

describe("refused sends take no sequence number", () => {
  it("a send the beforeSend hook refuses leaves no gap in the conversation", async () => {
    const w = oneNode({
      hooks: {
        beforeSend: (e) =>
          e.text === "spam" ? { code: "rate_limited", message: "no spam" } : undefined,
      },
    });
    const alice = await w.connect("alice");
    const bob = await w.connect("bob");
    await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
    await alice.send({ type: "send", id: "c2", to: { user: "bob" }, text: "spam" });
    await alice.send({ type: "send", id: "c3", to: { user: "bob" }, text: "again" });
    expect(alice.transport.ofType("error")).toMatchObject([{ code: "rate_limited", ref: "c2" }]);
    expect(seqs(alice.transport.frames)).toEqual([1, 2]);
    expect(bob.transport.ofType("message").map((m) => m.seq)).toEqual([1, 2]);
  });

  it("a send the queue refuses (recipient queue full) leaves no gap in the conversation", async () => {
    const clock = new ManualClock(1_000_000);
    const clockWorld = oneNode({ clock, outbox: deliveryQueue({ clock, maxPerDevice: 1 }) });
    const alice = await clockWorld.connect("alice");
    // Bob has a device but is offline: his queue fills.
    await clockWorld.router.linkDevice(userId("bob"), deviceId("d1"));
    await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "one" });
    await alice.send({ type: "send", id: "c2", to: { user: "bob" }, text: "two" });
    expect(alice.transport.ofType("error")).toMatchObject([
      { code: "recipient_queue_full", ref: "c2" },
    ]);
    // Bob comes online and acks: the next message follows 1 with no gap.
    const bob = await clockWorld.connect("bob");
    const [first] = bob.transport.ofType("message");
    expect(first?.seq).toBe(1);
    await bob.send({ type: "receipt", status: "delivered", ids: [first!.id] });
    await alice.send({ type: "send", id: "c3", to: { user: "bob" }, text: "three" });
    expect(seqs(alice.transport.frames)).toEqual([1, 2]);
    expect(bob.transport.ofType("message").map((m) => m.seq)).toEqual([1, 2]);
  });
});
