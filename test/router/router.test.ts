import { describe, expect, it } from "vitest";
import { oneNode } from "../support/world.js";

describe("Router: the 1:1 path", () => {
  it("delivers to every device of the recipient and copies to the sender's other devices", async () => {
    const w = oneNode();
    const a1 = await w.connect("alice", "phone");
    const a2 = await w.connect("alice", "laptop");
    const b1 = await w.connect("bob", "phone");
    const b2 = await w.connect("bob", "laptop");
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" });
    const sent = a1.transport.ofType("receipt");
    expect(sent).toMatchObject([{ status: "sent", clientId: "c1", seq: 1 }]);
    for (const t of [b1, b2, a2]) {
      expect(t.transport.ofType("message")).toMatchObject([
        { from: "alice", fromDevice: "phone", text: "hi", seq: 1, conversation: "dm:alice:bob" },
      ]);
    }
    expect(a1.transport.ofType("message")).toEqual([]);
  });

  it("assigns a total order per conversation", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "1" });
    await b.send({ type: "send", id: "c1", to: { user: "alice" }, text: "2" });
    await a.send({ type: "send", id: "c2", to: { user: "bob" }, text: "3" });
    expect(b.transport.ofType("message").map((m) => m.seq)).toEqual([1, 3]);
    expect(a.transport.ofType("message").map((m) => m.seq)).toEqual([2]);
  });

  it("holds messages for an offline device and delivers them in order when it connects", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await w.gateway.closed(b.conn);
    for (let i = 1; i <= 5; i++)
      await a.send({ type: "send", id: `c${i}`, to: { user: "bob" }, text: `m${i}` });
    expect(a.transport.ofType("receipt").map((r) => r.status)).toEqual(Array(5).fill("sent"));
    const b2 = await w.connect("bob");
    await w.flush();
    expect(b2.transport.ofType("message").map((m) => m.text)).toEqual([
      "m1",
      "m2",
      "m3",
      "m4",
      "m5",
    ]);
  });

  it("redelivers unacked messages on reconnect and stops after the ack", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    const [m] = b.transport.ofType("message");
    await w.gateway.closed(b.conn);
    const again = await w.connect("bob");
    await w.flush();
    expect(again.transport.ofType("message").map((f) => f.id)).toEqual([m!.id]);
    await again.send({ type: "receipt", status: "delivered", ids: [m!.id] });
    await w.gateway.closed(again.conn);
    const third = await w.connect("bob");
    await w.flush();
    expect(third.transport.ofType("message")).toEqual([]);
  });

  it("rejects a forged sender with an error frame and delivers nothing", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x", from: "carol" });
    expect(a.transport.ofType("error")).toMatchObject([{ code: "forbidden_sender", ref: "c1" }]);
    expect(b.transport.frames).toEqual([]);
  });

  it("routes delivered and read receipts back to every device of the sender", async () => {
    const w = oneNode();
    const a1 = await w.connect("alice", "phone");
    const a2 = await w.connect("alice", "laptop");
    const b = await w.connect("bob", "phone");
    await a1.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    const [m] = b.transport.ofType("message");
    await b.send({ type: "receipt", status: "delivered", ids: [m!.id] });
    await b.send({ type: "receipt", status: "read", ids: [m!.id] });
    for (const t of [a1, a2]) {
      expect(
        t.transport
          .ofType("receipt")
          .filter((r) => r.status !== "sent")
          .map((r) => r.status),
      ).toEqual(["delivered", "read"]);
    }
  });

  it("answers a retried send with the original receipt and does not deliver twice", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "x" });
    const receipts = a.transport.ofType("receipt");
    expect(receipts).toHaveLength(2);
    expect(receipts[1]).toEqual(receipts[0]);
    expect(b.transport.ofType("message")).toHaveLength(1);
  });

  it("refuses a message to a user with no device when revealUnknownRecipients is on", async () => {
    const w = oneNode({ revealUnknownRecipients: true });
    const a = await w.connect("alice");
    await a.send({ type: "send", id: "c1", to: { user: "nobody" }, text: "x" });
    expect(a.transport.ofType("error")).toMatchObject([{ code: "recipient_unknown" }]);
  });

  it("by default answers a send to a never-seen user like any other (sent), telling nothing", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    await w.connect("bob");
    await a.send({ type: "send", id: "c1", to: { user: "nobody" }, text: "x" });
    await a.send({ type: "send", id: "c2", to: { user: "bob" }, text: "x" });
    expect(a.transport.ofType("error")).toEqual([]);
    const sent = a.transport.ofType("receipt");
    expect(sent.map((r) => [r.status, "clientId" in r ? r.clientId : ""])).toEqual([
      ["sent", "c1"],
      ["sent", "c2"],
    ]);
  });
});
