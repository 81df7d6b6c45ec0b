import { expect, it } from "vitest";
import type { DeliveryQueue } from "../../src/queue/index.js";
import { oneNode } from "../support/world.js";

it("degraded mode and a client asking for the low lane delay a conversation, never reorder it", async () => {
  const { router, connect, flush } = oneNode();
  const queue = router.outbox as DeliveryQueue;
  const alice = await connect("alice");
  const bob = await connect("bob");
  queue.load.setDegraded(true);
  await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "first", priority: "low" });
  await alice.send({ type: "send", id: "c2", to: { user: "bob" }, text: "second" });
  await flush();
  const texts = bob.transport.ofType("message").map((m) => m.text);
  // Either both, in order, or the conversation waits: never "second" before "first".
  expect(texts[0]).not.toBe("second");
  queue.load.setDegraded(false);
  await flush();
  expect(bob.transport.ofType("message").map((m) => m.text)).toEqual(["first", "second"]);
});
