import { describe, expect, it } from "vitest";
import { oneNode } from "../support/world.js";

describe("dedupe is per (user, device, client id)", () => {
  it("a second device of the sender reusing a client id gets its own message, not the other device's sent", async () => {
    const w = oneNode();
    const phone = await w.connect("alice", "phone");
    const laptop = await w.connect("alice", "laptop");
    const bob = await w.connect("bob");
    await phone.send({ type: "send", id: "c1", to: { user: "bob" }, text: "from phone" });
    await laptop.send({ type: "send", id: "c1", to: { user: "bob" }, text: "from laptop" });
    const [p] = phone.transport.ofType("receipt").filter((r) => r.status === "sent");
    const [l] = laptop.transport.ofType("receipt").filter((r) => r.status === "sent");
    expect(p).toMatchObject({ clientId: "c1", seq: 1 });
    expect(l).toMatchObject({ clientId: "c1", seq: 2 });
    expect(l && "id" in l && p && "id" in p && l.id !== p.id).toBe(true);
    expect(bob.transport.ofType("message").map((m) => [m.text, m.fromDevice])).toEqual([
      ["from phone", "phone"],
      ["from laptop", "laptop"],
    ]);
    // A retry from the same device is still answered with its first receipt, not sent twice.
    await laptop.send({ type: "send", id: "c1", to: { user: "bob" }, text: "from laptop" });
    expect(laptop.transport.ofType("receipt").filter((r) => r.status === "sent")).toEqual([l, l]);
    expect(bob.transport.ofType("message")).toHaveLength(2);
  });
});
