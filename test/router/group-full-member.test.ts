import { expect, it } from "vitest";
import {
  type DeviceKey,
  deviceKey,
  type GroupId,
  ManualClock,
  type UserId,
} from "../../src/core/index.js";
import { deliveryQueue } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

const members = ["alice", "bob", "carol"] as UserId[];
const groups = { members: async () => members, isMember: async () => true };

/** One node whose queue holds at most 3 entries per device, carol's phone linked but offline. */
async function world() {
  const w = oneNode({
    groups,
    outbox: deliveryQueue({ clock: new ManualClock(), maxPerDevice: 3, perSender: false }),
  });
  await w.router.linkDevice("carol" as UserId, "d1" as never);
  const alice = await w.connect("alice");
  const bob = await w.connect("bob");
  // carol's queue is full: three 1:1 messages from alice wait for her.
  for (let n = 1; n <= 3; n++) {
    await alice.send({ type: "send", id: `a${n}`, to: { user: "carol" }, text: `a${n}` });
  }
  const failed: [string, DeviceKey, string][] = [];
  w.router.on("failed", (env, device, reason) => failed.push([env.id, device, reason]));
  return { ...w, alice, bob, failed };
}

it("a member device at its cap costs only that device: the group post is accepted, the others get it, the sender hears the device failed", async () => {
  const { alice, bob, failed, flush } = await world();
  await bob.send({ type: "send", id: "b1", to: { group: "g1" }, text: "hi all" });
  await flush();
  expect(bob.transport.ofType("error")).toEqual([]);
  const sent = bob.transport.ofType("receipt").find((r) => r.status === "sent");
  expect(sent).toMatchObject({ clientId: "b1" });
  expect(alice.transport.ofType("message").map((m) => m.text)).toEqual(["hi all"]);
  expect(failed).toEqual([
    [
      sent && "id" in sent ? sent.id : "?",
      deviceKey("carol" as UserId, "d1" as never),
      "recipient_queue_full",
    ],
  ]);
});

it("a system message reaches a member whose queue is full", async () => {
  const { router, connect, flush } = await world();
  const posted = await router.postSystem("g1" as GroupId, {
    event: "member.added",
    actor: "alice" as UserId,
    members: ["carol" as UserId],
  });
  expect(posted).toBeDefined();
  const carol = await connect("carol");
  await flush();
  const got = carol.transport.ofType("message");
  await carol.send({ type: "receipt", status: "delivered", ids: got.map((m) => m.id) });
  await flush();
  const all = carol.transport.ofType("message");
  expect(all.map((m) => m.id)).toContain(posted!.id);
  expect(all.find((m) => m.id === posted!.id)?.system).toMatchObject({ event: "member.added" });
});
