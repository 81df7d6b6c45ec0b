import { describe, expect, it } from "vitest";
import type { FakeTransport } from "../support/fake-transport.js";
import { oneNode } from "../support/world.js";

const ticks = (t: FakeTransport) => t.ofType("receipt").filter((r) => r.status !== "sent");

async function dm() {
  const w = oneNode();
  const alice = await w.connect("alice", "phone");
  const bob = await w.connect("bob", "phone");
  const send = async (text: string) => {
    await alice.send({ type: "send", id: text, to: { user: "bob" }, text });
    return bob.transport.ofType("message").at(-1)!.id;
  };
  return { ...w, alice, bob, send };
}

describe("read watermarks never run ahead of delivery", () => {
  it("a watermark with nothing delivered gives no read tick, and does not cover later messages", async () => {
    const w = await dm();
    await w.bob.send({
      type: "receipt",
      status: "read",
      conversation: "dm:alice:bob",
      upTo: 1_000_000,
    });
    expect(ticks(w.alice.transport)).toEqual([]);
    const id = await w.send("hi");
    await w.bob.send({ type: "receipt", status: "delivered", ids: [id] });
    expect(ticks(w.alice.transport).map((r) => r.status)).toEqual(["delivered"]);
  });

  it("a watermark past what was delivered is clamped to the last delivered message", async () => {
    const w = await dm();
    const first = await w.send("one");
    await w.send("two");
    await w.bob.send({ type: "receipt", status: "delivered", ids: [first] });
    w.alice.transport.clear();
    await w.bob.send({
      type: "receipt",
      status: "read",
      conversation: "dm:alice:bob",
      upTo: 1_000_000,
    });
    expect(ticks(w.alice.transport)).toMatchObject([
      { status: "read", conversation: "dm:alice:bob", upTo: 1, by: "bob" },
    ]);
    // A message accepted after the watermark is not read by it.
    const third = await w.send("three");
    await w.bob.send({ type: "receipt", status: "delivered", ids: [third] });
    expect(ticks(w.alice.transport).map((r) => r.status)).toEqual(["read", "delivered"]);
  });
});

describe("receipts from someone who is not a recipient change nothing and get an error", () => {
  it("delivered and read by ids from a third user", async () => {
    const w = await dm();
    const carol = await w.connect("carol");
    const id = await w.send("hi");
    for (const status of ["delivered", "read"] as const) {
      await carol.send({ type: "receipt", status, ids: [id] });
    }
    expect(carol.transport.ofType("error")).toMatchObject([
      { code: "not_recipient", path: "ids" },
      { code: "not_recipient", path: "ids" },
    ]);
    expect(ticks(w.alice.transport)).toEqual([]);
    expect((await w.router.receipts.info(id as never))?.status).toBe("sent");
  });

  it("delivered and read by ids from the sender on its own message (the sending device)", async () => {
    const w = await dm();
    const id = await w.send("hi");
    w.alice.transport.clear();
    for (const status of ["delivered", "read"] as const) {
      await w.alice.send({ type: "receipt", status, ids: [id] });
    }
    expect(w.alice.transport.frames).toMatchObject([
      { type: "error", code: "not_recipient" },
      { type: "error", code: "not_recipient" },
    ]);
    expect(ticks(w.bob.transport)).toEqual([]);
    expect((await w.router.receipts.info(id as never))?.status).toBe("sent");
  });

  it("a watermark from a third user", async () => {
    const w = await dm();
    const carol = await w.connect("carol");
    await w.send("hi");
    await carol.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 1 });
    expect(carol.transport.ofType("error")).toMatchObject([{ code: "not_recipient" }]);
    expect(ticks(w.alice.transport)).toEqual([]);
  });

  it("a watermark from the sender over its own messages reads nothing", async () => {
    const w = await dm();
    await w.send("hi");
    const id = w.bob.transport.ofType("message")[0]!.id;
    await w.alice.send({ type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 1 });
    expect(ticks(w.bob.transport)).toEqual([]);
    expect((await w.router.receipts.info(id as never))?.status).toBe("sent");
  });
});
