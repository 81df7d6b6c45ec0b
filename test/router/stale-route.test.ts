import { expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import {
  type DeviceId,
  deviceKey,
  type NodeId,
  type SessionId,
  type UserId,
} from "../../src/core/ids.js";
import { sequentialIds } from "../../src/core/random.js";
import type { Session } from "../../src/core/types.js";
import { type Connection, Gateway } from "../../src/gateway/index.js";
import type { DeliveryQueue } from "../../src/queue/index.js";
import { MemorySessionDirectory, Router, type SessionDirectory } from "../../src/router/index.js";
import { FakeTransport } from "../support/fake-transport.js";

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

it("a device that connects while a send's lookup is in flight still gets the message", async () => {
  const clock = new ManualClock(1_000_000);
  const directory = new SlowDirectory();
  const router = new Router({ clock, ids: sequentialIds(), directory });
  const gw = new Gateway<{ user: string }>({
    router,
    clock,
    ids: sequentialIds("g"),
    authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
  });
  await router.linkDevice("bob" as UserId, "d1" as DeviceId);
  const a = (await gw.open(new FakeTransport(), { user: "alice" })) as Connection;
  let release!: () => void;
  directory.gate = new Promise((r) => (release = r));
  const asked = new Promise<void>((r) => (directory.called = r));
  const sending = gw.receive(
    a,
    JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
  );
  await asked;
  directory.called = undefined;
  // bob connects while alice's lookup is in flight
  const bt = new FakeTransport();
  await gw.open(bt, { user: "bob" });
  directory.gate = undefined;
  release();
  await sending;
  for (let i = 0; i < 50; i++) {
    clock.advance(60_000);
    await Promise.resolve();
  }
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  expect(bt.ofType("message").map((m) => m.text)).toContain("hi");
});

it("a device that disconnects while a send's lookup is in flight stays offline in the queue", async () => {
  const clock = new ManualClock(1_000_000);
  const directory = new SlowDirectory();
  const router = new Router({ clock, ids: sequentialIds(), directory });
  const gw = new Gateway<{ user: string }>({
    router,
    clock,
    ids: sequentialIds("g"),
    authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
  });
  const a = (await gw.open(new FakeTransport(), { user: "alice" })) as Connection;
  const bob = (await gw.open(new FakeTransport(), { user: "bob" })) as Connection;
  let release!: () => void;
  directory.gate = new Promise((r) => {
    release = r;
  });
  const asked = new Promise<void>((r) => {
    directory.called = r;
  });
  const sending = gw.receive(
    a,
    JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
  );
  await asked;
  directory.called = undefined;
  // bob goes away while alice's lookup (which still sees him) is in flight
  await gw.closed(bob);
  directory.gate = undefined;
  release();
  await sending;
  const queue = router.outbox as DeliveryQueue;
  const key = deviceKey("bob" as UserId, "d1" as DeviceId);
  expect(queue.isOnline(key)).toBe(false);
  // Offline: its entry waits for him instead of burning its attempts.
  clock.advance(3_600_000);
  expect(queue.stats.failed).toBe(0);
  expect(queue.depth).toBe(1);
});
