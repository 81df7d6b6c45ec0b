import { describe, expect, it } from "vitest";
import { directConversation, type UserId } from "../../src/core/ids.js";
import { oneNode } from "../support/world.js";

describe("1:1 conversations of user ids with colons", () => {
  it("x to y:z and x:y to z are two conversations, each from seq 1, and z's watermark on its own works", async () => {
    const w = oneNode();
    const x = await w.connect("x");
    const yz = await w.connect("y:z");
    const xy = await w.connect("x:y");
    const z = await w.connect("z");
    await x.send({ type: "send", id: "c1", to: { user: "y:z" }, text: "to y:z" });
    await xy.send({ type: "send", id: "c1", to: { user: "z" }, text: "to z" });
    const [toYz] = yz.transport.ofType("message");
    const [toZ] = z.transport.ofType("message");
    expect(toYz).toMatchObject({ seq: 1, text: "to y:z" });
    expect(toZ).toMatchObject({ seq: 1, text: "to z" });
    expect(toYz!.conversation).not.toBe(toZ!.conversation);
    expect(toZ!.conversation).toBe(directConversation("x:y" as UserId, "z" as UserId));

    await z.send({ type: "receipt", status: "delivered", ids: [toZ!.id] });
    await z.send({ type: "receipt", status: "read", conversation: toZ!.conversation, upTo: 1 });
    expect(z.transport.ofType("error")).toEqual([]);
    expect(
      xy.transport
        .ofType("receipt")
        .filter((r) => r.status !== "sent")
        .map((r) => r.status),
    ).toEqual(["delivered", "read"]);
    // Nothing of it reached x, who shares no conversation with z.
    expect(x.transport.ofType("receipt").filter((r) => r.status !== "sent")).toEqual([]);
  });
});
