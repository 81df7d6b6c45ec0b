import { describe, expect, it } from "vitest";
import { deviceId, type GroupId, type MessageId, userId } from "../../src/core/index.js";
import { GroupService } from "../../src/groups/index.js";
import type { ServerFrame } from "../../src/protocol/index.js";
import { type Cluster, type ClusterDevice, cluster } from "../support/cluster.js";
import type { FakeTransport } from "../support/fake-transport.js";

type Receipt = Extract<ServerFrame, { type: "receipt" }>;

/** Receipt frames other than the `sent` tick. */
const ticks = (t: FakeTransport): Receipt[] =>
  t.ofType("receipt").filter((r) => r.status !== "sent");

const messageIds = (d: ClusterDevice): MessageId[] =>
  d.transport.ofType("message").map((m) => m.id as MessageId);

/**
 * Alice (phone on n1, laptop on n2) and Bob (phone on n2, laptop on n3): two devices each
 * side, spread so every tick crosses the bus.
 */
async function dm(opts: Parameters<typeof cluster>[1] = {}) {
  const c = cluster(3, opts);
  const a1 = await c.connect(0, "alice", "phone");
  const a2 = await c.connect(1, "alice", "laptop");
  const b1 = await c.connect(1, "bob", "phone");
  const b2 = await c.connect(2, "bob", "laptop");
  const clear = () => {
    for (const d of [a1, a2, b1, b2]) d.transport.clear();
  };
  return { c, a1, a2, b1, b2, clear };
}

describe("Router receipts, 1:1, across nodes", () => {
  it("sent, delivered and read reach both sender devices; read sync reaches the reader's other device", async () => {
    const { c, a1, a2, b1, b2 } = await dm();
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
    expect(a1.transport.ofType("receipt")).toMatchObject([
      { status: "sent", clientId: "c1", seq: 1, conversation: "dm:alice:bob" },
    ]);
    const [id] = messageIds(b1);
    expect(id).toBeDefined();
    // Every device but the sending one has the message exactly once.
    for (const d of [a2, b1, b2]) expect(messageIds(d)).toEqual([id]);
    expect(messageIds(a1)).toEqual([]);

    await b1.send({ type: "receipt", status: "delivered", ids: [id] });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([
        { status: "delivered", ids: [id], by: "bob", device: "phone" },
      ]);
    }
    // A second device of the same user having it changes nothing for the sender.
    await b2.send({ type: "receipt", status: "delivered", ids: [id] });
    for (const a of [a1, a2]) expect(ticks(a.transport)).toHaveLength(1);

    await b2.send({ type: "receipt", status: "read", ids: [id] });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport).map((r) => r.status)).toEqual(["delivered", "read"]);
      expect(ticks(a.transport)[1]).toMatchObject({ ids: [id], by: "bob", device: "laptop" });
    }
    // Read sync: Bob's phone learns the laptop read it; the laptop itself gets nothing back.
    expect(ticks(b1.transport)).toMatchObject([
      { status: "read", ids: [id], by: "bob", device: "laptop" },
    ]);
    expect(ticks(b2.transport)).toEqual([]);
    // Duplicate and late receipts never move anything backwards nor produce new ticks.
    await b1.send({ type: "receipt", status: "delivered", ids: [id] });
    await b1.send({ type: "receipt", status: "read", ids: [id] });
    for (const a of [a1, a2]) expect(ticks(a.transport)).toHaveLength(2);
    await c.close();
  });

  it("receipts never produce receipts: the sender's own devices acking its message tell no one", async () => {
    const { c, a1, a2, b1, b2, clear } = await dm();
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
    const [id] = messageIds(a2);
    clear();
    // The copy on Alice's laptop acks its delivery: it clears the queue, tells no one.
    await a2.send({ type: "receipt", status: "delivered", ids: [id] });
    for (const d of [a1, a2, b1, b2]) expect(d.transport.frames).toEqual([]);
    // Reading one's own message is no receipt: an error, and nothing routed.
    await a2.send({ type: "receipt", status: "read", ids: [id] });
    expect(a2.transport.frames).toMatchObject([{ type: "error", code: "not_recipient" }]);
    for (const d of [a1, b1, b2]) expect(d.transport.frames).toEqual([]);
    await c.close();
  });

  it("a read watermark marks every covered message read with one tick, and older ones are ignored", async () => {
    const { c, a1, a2, b1, b2, clear } = await dm();
    for (let i = 1; i <= 3; i++) {
      await a1.send({ type: "send", id: `c${i}`, to: { user: "bob" }, text: `m${i}` });
    }
    const ids = messageIds(b1);
    expect(b1.transport.ofType("message").map((m) => m.seq)).toEqual([1, 2, 3]);
    await b1.send({ type: "receipt", status: "delivered", ids });
    clear();

    await b1.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 3 });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([
        { status: "read", conversation: "dm:alice:bob", upTo: 3, by: "bob", device: "phone" },
      ]);
    }
    // Read sync to the laptop, as a watermark too.
    expect(ticks(b2.transport)).toMatchObject([
      { status: "read", conversation: "dm:alice:bob", upTo: 3, by: "bob", device: "phone" },
    ]);
    expect(ticks(b1.transport)).toEqual([]);
    for (const id of ids) {
      // Read and final: released from tracking, so no info is left to grow memory.
      expect(await c.nodes[0]!.router.receipts.info(id)).toBeUndefined();
    }
    clear();
    // An older watermark is ignored: no tick anywhere.
    await b2.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 2 });
    for (const d of [a1, a2, b1, b2]) expect(d.transport.frames).toEqual([]);
    await c.close();
  });

  it("a watermark covers only what it reaches; a later message stays unread", async () => {
    const { c, a1, b1 } = await dm();
    for (let i = 1; i <= 3; i++) {
      await a1.send({ type: "send", id: `c${i}`, to: { user: "bob" }, text: `m${i}` });
    }
    const ids = messageIds(b1);
    await b1.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 2 });
    const info = await c.nodes[0]!.router.receipts.info(ids[2]!);
    expect(info?.status).toBe("sent");
    await c.close();
  });

  it("refuses a watermark on someone else's conversation with an error frame", async () => {
    const { c, a1, b1 } = await dm();
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    const carol = await c.connect(0, "carol");
    await carol.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 1 });
    expect(carol.transport.ofType("error")).toMatchObject([
      { code: "not_recipient", path: "conversation" },
    ]);
    expect(ticks(a1.transport)).toEqual([]);
    expect(ticks(b1.transport)).toEqual([]);
    await c.close();
  });

  it("privacy off: delivered is final for Bob's messages, and (reciprocal) Bob sees no one's reads", async () => {
    const { c, a1, a2, b1, b2, clear } = await dm({
      receipts: { readReceipts: (u) => u !== userId("bob") },
    });
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    const [id] = messageIds(b1);
    await b1.send({ type: "receipt", status: "delivered", ids: [id] });
    await b1.send({ type: "receipt", status: "read", ids: [id] });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport).map((r) => r.status)).toEqual(["delivered"]);
    }
    // Bob's own devices still sync their unread state.
    expect(ticks(b2.transport).map((r) => r.status)).toEqual(["read"]);
    // The watermark form is hidden too: only the delivered shows (a watermark covers only
    // what a device of Bob has, so it adds nothing the sender may see).
    await a1.send({ type: "send", id: "c2", to: { user: "bob" }, text: "y" });
    const [, id2] = messageIds(b1);
    clear();
    await b1.send({ type: "receipt", status: "delivered", ids: [id2] });
    await b2.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 2 });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([{ status: "delivered", by: "bob" }]);
    }
    expect(ticks(b1.transport)).toMatchObject([
      { status: "read", conversation: "dm:alice:bob", upTo: 2 },
    ]);

    // Reciprocal: Alice shares hers, but Bob (who hides his) does not see Alice read.
    await b1.send({ type: "send", id: "r1", to: { user: "alice" }, text: "z" });
    const [back] = messageIds(a1).slice(-1);
    await a1.send({ type: "receipt", status: "delivered", ids: [back] });
    await a1.send({ type: "receipt", status: "read", ids: [back] });
    for (const b of [b1, b2]) {
      expect(ticks(b.transport).filter((r) => "ids" in r && r.ids.includes(back!))).toMatchObject([
        { status: "delivered", by: "alice" },
      ]);
    }
    await c.close();
  });

  it("a receipt that overtakes its message is held, then applied when the message is tracked", async () => {
    const { c, a1, a2, b1 } = await dm();
    // The ack reaches the tracker of the sender's node before the message is tracked.
    const early = await c.nodes[0]!.router.receipts.ack(
      userId("bob"),
      deviceId("phone"),
      "delivered",
      ["mn1.1" as MessageId],
    );
    expect(early.buffered).toEqual(["mn1.1"]);
    expect((await c.nodes[0]!.router.receipts.size()).buffered).toBe(1);
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    expect(messageIds(b1)).toEqual(["mn1.1"]);
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([
        { status: "delivered", ids: ["mn1.1"], by: "bob", device: "phone" },
      ]);
    }
    expect((await c.nodes[0]!.router.receipts.size()).buffered).toBe(0);
    await c.close();
  });

  // The overtaking-receipt buffer is per tracker, but it looks the message up in the shared
  // store halfway through and at its deadline, so an ack buffered on node 2 for a message
  // node 1 tracks is applied.
  it("cross-node: a receipt buffered on another node is applied once the message is tracked", async () => {
    const { c, a1, a2 } = await dm();
    await c.nodes[1]!.router.receipts.ack(userId("bob"), deviceId("phone"), "delivered", [
      "mn1.1" as MessageId,
    ]);
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    c.clock.advance(5000);
    await c.flush();
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([{ status: "delivered", ids: ["mn1.1"] }]);
    }
    await c.close();
  });

  // Per-node queues over one store run with `sharedStore: true` (see test/support/cluster.ts):
  // an ack taken by another node drops the entry before the enqueuing node's next retry.
  it("cross-node: an ack on the recipient's node stops the sender node's redeliveries", async () => {
    const { c, a1, b1 } = await dm();
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    const [id] = messageIds(b1);
    await b1.send({ type: "receipt", status: "delivered", ids: [id] });
    for (let i = 0; i < 5; i++) {
      c.clock.advance(2000);
      await c.flush();
    }
    expect(messageIds(b1)).toEqual([id]);
    await c.close();
  });
});

/** Alice (2 devices), Bob (2 devices) and Carol across 3 nodes, in a group with `policy`. */
async function groupWorld(policy: "none" | "aggregate" | "per-member") {
  const groups = new GroupService();
  const c: Cluster = cluster(3, { router: () => ({ groups }) });
  const a1 = await c.connect(0, "alice", "phone");
  const a2 = await c.connect(1, "alice", "laptop");
  const b1 = await c.connect(1, "bob", "phone");
  const b2 = await c.connect(2, "bob", "laptop");
  const k = await c.connect(2, "carol", "phone");
  const g = await groups.create(userId("alice"), {
    id: "g1" as GroupId,
    members: [userId("bob"), userId("carol")],
    receipts: policy,
  });
  await a1.send({ type: "send", id: "c1", to: { group: g.id }, text: "hello all" });
  const [id] = messageIds(k);
  for (const d of [a2, b1, b2, k]) expect(messageIds(d)).toEqual([id]);
  const all = [a1, a2, b1, b2, k];
  for (const d of all) d.transport.clear();
  return { c, groups, a1, a2, b1, b2, k, id: id!, all };
}

describe("Router receipts, groups, by policy", () => {
  it("`none`: the sender gets only the sent tick, whatever the members do", async () => {
    const { c, a1, a2, b1, b2, k, id } = await groupWorld("none");
    for (const d of [b1, b2, k]) await d.send({ type: "receipt", status: "delivered", ids: [id] });
    // Still tracked per device (message info works), just never told to the sender.
    const info = await c.nodes[0]!.router.receipts.info(id);
    expect(info?.mode).toBe("none");
    expect(info?.members.map((m) => [m.userId, m.status])).toEqual([
      ["bob", "delivered"],
      ["carol", "delivered"],
    ]);
    for (const d of [b1, b2, k]) await d.send({ type: "receipt", status: "read", ids: [id] });
    // Read by everyone: final, released.
    expect(await c.nodes[0]!.router.receipts.info(id)).toBeUndefined();
    expect(ticks(a1.transport)).toEqual([]);
    expect(ticks(a2.transport)).toEqual([]);
    // Read sync among Bob's own devices still happens.
    expect(ticks(b2.transport)).toMatchObject([{ status: "read", by: "bob", device: "phone" }]);
    await c.close();
  });

  it("`aggregate`: one delivered tick when every member has it, one read tick when all read", async () => {
    const { c, a1, a2, b1, k, id } = await groupWorld("aggregate");
    await b1.send({ type: "receipt", status: "delivered", ids: [id] });
    expect(ticks(a1.transport)).toEqual([]);
    await k.send({ type: "receipt", status: "delivered", ids: [id] });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([{ status: "delivered", ids: [id], by: "g1" }]);
    }
    await b1.send({ type: "receipt", status: "read", ids: [id] });
    for (const a of [a1, a2]) expect(ticks(a.transport)).toHaveLength(1);
    await k.send({ type: "receipt", status: "read", ids: [id] });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport).map((r) => r.status)).toEqual(["delivered", "read"]);
    }
    await c.close();
  });

  it("`aggregate`: read before delivered counts as both", async () => {
    const { c, a1, b1, k, id } = await groupWorld("aggregate");
    await b1.send({ type: "receipt", status: "read", ids: [id] });
    await k.send({ type: "receipt", status: "read", ids: [id] });
    expect(ticks(a1.transport).map((r) => r.status)).toEqual(["read"]);
    await c.close();
  });

  it("`per-member`: a tick per member, and message info says who has it and who read it, with times", async () => {
    const { c, a1, a2, b1, b2, k, id } = await groupWorld("per-member");
    c.clock.advance(1000);
    await b2.send({ type: "receipt", status: "delivered", ids: [id] });
    c.clock.advance(1000);
    await k.send({ type: "receipt", status: "delivered", ids: [id] });
    c.clock.advance(1000);
    await k.send({ type: "receipt", status: "read", ids: [id] });
    for (const a of [a1, a2]) {
      expect(ticks(a.transport)).toMatchObject([
        { status: "delivered", ids: [id], by: "bob", device: "laptop" },
        { status: "delivered", ids: [id], by: "carol", device: "phone" },
        { status: "read", ids: [id], by: "carol", device: "phone" },
      ]);
    }
    const t0 = 1_000_000;
    const info = await c.nodes[2]!.router.receipts.info(id);
    expect(info).toMatchObject({
      id,
      from: "alice",
      group: "g1",
      mode: "per-member",
      status: "delivered",
    });
    const byUser = new Map(info!.members.map((m) => [m.userId, m]));
    expect(byUser.get(userId("bob"))).toMatchObject({
      status: "delivered",
      deliveredAt: t0 + 1000,
    });
    expect(byUser.get(userId("bob"))?.readAt).toBeUndefined();
    expect(byUser.get(userId("bob"))?.devices.map((d) => [d.deviceId, d.state])).toEqual([
      ["phone", "sent"],
      ["laptop", "delivered"],
    ]);
    expect(byUser.get(userId("carol"))).toMatchObject({
      status: "read",
      deliveredAt: t0 + 2000,
      readAt: t0 + 3000,
    });
    // Alice's other device is not a recipient of her own message's ticks.
    expect(byUser.has(userId("alice"))).toBe(false);
    // b1 never acked: no tick went to Bob (the queue redelivers to b1 meanwhile).
    expect(b1.transport.ofType("receipt")).toEqual([]);
    await c.close();
  });

  it("the recipient set is frozen at send time: a member who leaves still appears in the info", async () => {
    const { c, groups, b1, id } = await groupWorld("per-member");
    await groups.leave("g1" as GroupId, userId("bob"));
    const info = await c.nodes[0]!.router.receipts.info(id);
    expect(info!.members.map((m) => m.userId).sort()).toEqual(["bob", "carol"]);
    await b1.send({ type: "receipt", status: "delivered", ids: [id] });
    const after = await c.nodes[0]!.router.receipts.info(id);
    expect(after!.members.find((m) => m.userId === "bob")?.status).toBe("delivered");
    await c.close();
  });
});
