import { expect, it } from "vitest";
import {
  type DeviceId,
  deviceKey,
  type NodeId,
  type SessionId,
  type UserId,
} from "../../src/core/ids.js";
import type { Session } from "../../src/core/types.js";
import type { DeliveryQueue } from "../../src/queue/index.js";
import { MemorySessionDirectory, type SessionDirectory } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

/** lookupMany answers late (a remote directory): the snapshot is taken when asked. */
class SlowDirectory implements SessionDirectory {
  readonly #inner = new MemorySessionDirectory();
  gate: Promise<void> | undefined;
  called: (() => void) | undefined;
  register(session: Session) {
    return this.#inner.register(session);
  }
  unregister(sessionId: SessionId) {
    return this.#inner.unregister(sessionId);
  }
  lookup(userId: UserId) {
    return this.#inner.lookup(userId);
  }
  lookupMany(users: readonly UserId[]) {
    const snap = this.#inner.lookupMany(users);
    this.called?.();
    const g = this.gate;
    return g ? g.then(() => snap) : snap;
  }
  sessionsOf(nodeId: NodeId) {
    return this.#inner.sessionsOf(nodeId);
  }
  dropNode(nodeId: NodeId) {
    return this.#inner.dropNode(nodeId);
  }
}

/**
 * A node whose directory lookups wait at a gate, and a send from alice to bob caught in one;
 * `bobFirst` connects bob before the send.
 */
async function sendCaughtInLookup(bobFirst = false) {
  const directory = new SlowDirectory();
  const node = oneNode({ directory });
  const alice = await node.connect("alice");
  // bob's device is known before the send either way (linked, or connected).
  await node.router.linkDevice("bob" as UserId, "d1" as DeviceId);
  const bob = bobFirst ? await node.connect("bob") : undefined;
  let release!: () => void;
  directory.gate = new Promise((r) => {
    release = r;
  });
  const asked = new Promise<void>((r) => {
    directory.called = r;
  });
  const sending = node.gateway.receive(
    alice.conn,
    JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
  );
  await asked;
  directory.called = undefined;
  const finish = async () => {
    directory.gate = undefined;
    release();
    await sending;
  };
  return { ...node, bob, finish };
}

it("a device that connects while a send's lookup is in flight still gets the message", async () => {
  const { clock, connect, finish } = await sendCaughtInLookup();
  const bob = await connect("bob");
  await finish();
  const got = () => bob.transport.ofType("message").map((m) => m.text);
  for (let i = 0; i < 50 && got().length === 0 && !bob.transport.closedWith; i++) {
    clock.advance(5_000);
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
  }
  // On this connection, or (a transmission that missed it is not repeated on it) on the
  // next one, once this one was closed as unresponsive.
  if (got().length > 0) expect(got()).toContain("hi");
  else {
    expect(bob.transport.closedWith?.code).toBe(4409);
    const again = await connect("bob");
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
    expect(again.transport.ofType("message").map((m) => m.text)).toContain("hi");
  }
});

it("a device that disconnects while a send's lookup is in flight stays offline in the queue", async () => {
  const { router, clock, gateway, bob, finish } = await sendCaughtInLookup(true);
  // bob goes away while alice's lookup (which still sees him) is in flight
  await gateway.closed(bob!.conn);
  await finish();
  const queue = router.outbox as DeliveryQueue;
  expect(queue.isOnline(deviceKey("bob" as UserId, "d1" as DeviceId))).toBe(false);
  // Offline: its entry waits for him instead of burning its attempts.
  clock.advance(3_600_000);
  expect(queue.stats.failed).toBe(0);
  expect(queue.depth).toBe(1);
});
