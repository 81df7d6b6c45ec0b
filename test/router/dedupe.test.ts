import { describe, expect, it } from "vitest";
import type { ServerFrame } from "../../src/index.js";
import { cluster } from "../support/cluster.js";

describe("Router dedupe across nodes", () => {
  it("the same send accepted concurrently on two nodes is stored and delivered once", async () => {
    const c = cluster(2);
    const onA = await c.connect(0, "alice", "phone");
    const onB = await c.connect(1, "alice", "phone");
    const bob = await c.connect(1, "bob", "phone");
    const frame = JSON.stringify({ type: "send", id: "same", to: { user: "bob" }, text: "once" });
    // A client that reconnected elsewhere (same device, the old socket not closed yet) resends
    // while the first node is still accepting.
    await Promise.all([
      c.nodes[0]!.gateway.receive(onA.conn, frame),
      c.nodes[1]!.gateway.receive(onB.conn, frame),
    ]);
    await c.flush();
    const sent = (t: { frames: ServerFrame[] }) =>
      t.frames.filter((f) => f.type === "receipt" && f.status === "sent");
    const [first] = sent(onA.transport);
    const [second] = sent(onB.transport);
    expect(first).toBeDefined();
    expect(second).toEqual(first);
    const got = bob.transport.frames.filter((f) => f.type === "message");
    expect(got.map((m) => (m.type === "message" ? m.text : ""))).toEqual(["once"]);
    await c.close();
  });
});
