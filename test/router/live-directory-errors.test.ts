import { expect, it } from "vitest";
import type { DeviceKey, GroupId, UserId } from "../../src/core/ids.js";
import { MemoryMessageStore, MemorySessionDirectory } from "../../src/router/index.js";
import { oneNode } from "../support/world.js";

/** An in-process directory that throws while its backend is "down". */
class FlakyDirectory extends MemorySessionDirectory {
  down = false;
  override lookupDeviceSync(device: DeviceKey) {
    if (this.down) throw new Error("directory down");
    return super.lookupDeviceSync(device);
  }
}

it("a directory that throws while a send is queued: the send is `sent`, reported, and delivered once the directory is back", async () => {
  const directory = new FlakyDirectory();
  const { clock, router, connect, flush } = oneNode({ directory });
  const errors: unknown[] = [];
  router.on("error", (e) => errors.push(e));
  const alice = await connect("alice");
  const bob = await connect("bob");
  directory.down = true;
  await alice.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
  expect(alice.transport.ofType("error")).toEqual([]);
  expect(alice.transport.ofType("receipt").map((r) => r.status)).toEqual(["sent"]);
  expect(errors.length).toBeGreaterThan(0);
  directory.down = false;
  // The transmission was lost: bob's connection stops acking, is closed as unresponsive,
  // and bob's next connection gets the message.
  for (let i = 0; i < 20 && bob.transport.closedWith === undefined; i++) {
    clock.advance(5_000);
    await flush();
  }
  expect(bob.transport.ofType("message")).toEqual([]);
  expect(bob.transport.closedWith?.code).toBe(4409);
  const bobAgain = await connect("bob");
  await flush();
  // At least once, and only this message.
  const sent = alice.transport.ofType("receipt")[0];
  const got = bobAgain.transport.ofType("message");
  expect(got.length).toBeGreaterThan(0);
  expect(new Set(got.map((m) => `${m.id}:${m.text}`))).toEqual(
    new Set([`${sent && "id" in sent ? sent.id : "?"}:hi`]),
  );
});

it("a membership port that lists a user twice: one delivery, one entry, and relay retention drops the message after the ack", async () => {
  const messages = new MemoryMessageStore();
  const groups = {
    members: async (_g: GroupId) => ["alice", "bob", "bob"] as UserId[],
    isMember: async () => true,
  };
  const w = oneNode({ messages, groups });
  const alice = await w.connect("alice");
  const bob = await w.connect("bob");
  await alice.send({ type: "send", id: "c1", to: { group: "g1" }, text: "hi" });
  const got = bob.transport.ofType("message");
  expect(got).toHaveLength(1);
  await bob.send({ type: "receipt", status: "delivered", ids: [got[0]!.id] });
  await w.flush();
  expect(messages.size).toBe(0);
});
