import { describe, expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { deviceId, userId } from "../../src/core/ids.js";
import { deliveryQueue } from "../../src/router/index.js";
import type { FakeTransport } from "../support/fake-transport.js";
import { oneNode } from "../support/world.js";

const ticks = (t: FakeTransport) =>
  t
    .ofType("receipt")
    .filter((r) => r.status !== "sent")
    .map((r) => r.status);

/** Alice (phone) and Bob: phone online, laptop linked but never connected; entries live 60 s. */
async function world() {
  const clock = new ManualClock(1_000_000);
  const w = oneNode({ clock, outbox: deliveryQueue({ clock, ttlMs: 60_000 }) });
  const alice = await w.connect("alice", "phone");
  const bob = await w.connect("bob", "phone");
  await w.router.linkDevice(userId("bob"), deviceId("laptop"));
  await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
  const [m] = bob.transport.ofType("message");
  return { ...w, clock, alice, bob, id: m!.id };
}

async function expire(w: { clock: ManualClock; flush: () => Promise<void> }) {
  w.clock.advance(61_000);
  await w.flush();
  w.clock.advance(61_000);
  await w.flush();
}

describe("the sender's status is the maximum over the recipient's devices", () => {
  it("a device that never got it fails nothing once another device delivered", async () => {
    const w = await world();
    await w.bob.send({ type: "receipt", status: "delivered", ids: [w.id] });
    await expire(w);
    expect(ticks(w.alice.transport)).toEqual(["delivered"]);
    const info = await w.router.receipts.info(w.id as never);
    expect(info?.members[0]).toMatchObject({
      userId: "bob",
      status: "delivered",
      devices: [
        { deviceId: "phone", state: "delivered" },
        { deviceId: "laptop", state: "failed" },
      ],
    });
  });

  it("nor after read", async () => {
    const w = await world();
    await w.bob.send({ type: "receipt", status: "read", ids: [w.id] });
    await expire(w);
    expect(ticks(w.alice.transport)).toEqual(["read"]);
  });

  it("failed when no device got it; a later delivery moves it up", async () => {
    const w = await world();
    await expire(w);
    expect(ticks(w.alice.transport)).toEqual(["failed"]);
    // The phone had it after all: its ack comes late, on its next connection (the silent one
    // was closed as unresponsive), and the status moves up.
    const phone = await w.connect("bob", "phone");
    await phone.send({ type: "receipt", status: "delivered", ids: [w.id] });
    expect(ticks(w.alice.transport)).toEqual(["failed", "delivered"]);
  });
});
