import { expect, it } from "vitest";
import { CLOSE_CODES } from "../../src/gateway/index.js";
import { oneNode } from "../support/world.js";

// Redelivery on the next connection (DESIGN.md): a message is sent once per connection;
// a connection that stops acking is closed, and the device's next connection gets it again.

it("a client that receives but never acks gets one copy per connection, not 11 over one socket; failed after the last attempt", async () => {
  const { clock, connect, flush } = oneNode();
  const alice = await connect("alice");
  let bob = await connect("bob");
  await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
  const copies: number[] = [];
  for (let round = 0; round < 20; round++) {
    // Two minutes is past every ack deadline (at most 60 s) plus the 10 s grace.
    for (let s = 0; s < 120 && !bob.transport.closedWith; s++) {
      clock.advance(1000);
      await flush();
    }
    copies.push(bob.transport.ofType("message").length);
    if (!bob.transport.closedWith) break;
    expect(bob.transport.closedWith.code).toBe(CLOSE_CODES.unresponsive);
    bob = await connect("bob");
    await flush();
  }
  // The default policy: 11 attempts (retries 10), one per connection; at the last one's
  // deadline the entry fails (the sender is told) and that connection is left open.
  expect(copies).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  const failed = alice.transport.ofType("receipt").filter((r) => r.status === "failed");
  expect(failed.map((r) => r.reason)).toEqual(["attempts_exhausted"]);
});

it("acks that come late but inside the grace: every message once on the one connection, which stays open", async () => {
  const { clock, connect, flush } = oneNode();
  const alice = await connect("alice");
  const bob = await connect("bob");
  for (let n = 0; n < 40; n++) {
    await alice.send({ type: "send", id: `c${n}`, to: { user: "bob" }, text: `m${n}` });
  }
  // A loaded server: bob's acks arrive 5 s after each batch, past the 1 s ack timeout.
  for (let step = 0; step < 10; step++) {
    clock.advance(5000);
    await flush();
    const got = bob.transport.ofType("message").map((m) => m.id);
    await bob.send({ type: "receipt", status: "delivered", ids: got });
  }
  const ids = bob.transport.ofType("message").map((m) => m.id);
  expect(ids).toHaveLength(40);
  expect(new Set(ids).size).toBe(40);
  expect(bob.transport.closedWith).toBeUndefined();
});

it("a connection that stops answering is closed and the next connection gets the messages, in order", async () => {
  const { clock, connect, flush } = oneNode();
  const alice = await connect("alice");
  const bob = await connect("bob");
  for (let n = 1; n <= 3; n++) {
    await alice.send({ type: "send", id: `c${n}`, to: { user: "bob" }, text: `m${n}` });
  }
  expect(bob.transport.ofType("message").map((m) => m.text)).toEqual(["m1", "m2", "m3"]);
  clock.advance(1000); // the ack deadline: a probe, nothing sent again
  await flush();
  expect(bob.transport.ofType("message")).toHaveLength(3);
  expect(bob.transport.closedWith).toBeUndefined();
  clock.advance(10_000); // the grace is over
  await flush();
  expect(bob.transport.closedWith?.code).toBe(CLOSE_CODES.unresponsive);
  const next = await connect("bob");
  await flush();
  expect(next.transport.ofType("message").map((m) => m.text)).toEqual(["m1", "m2", "m3"]);
});
