import { expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import type { Connection, Transport } from "../../src/gateway/index.js";
import { ReceiptTracker } from "../../src/receipts/index.js";
import { oneNode } from "../support/world.js";

/** An in-process client that acks every message the moment it is written to it. */
class AutoAck implements Transport {
  bufferedAmount = 0;
  ack: ((data: string) => void) | undefined;
  send(data: string) {
    const f = JSON.parse(data) as { type: string; id: string };
    if (f.type === "message")
      this.ack?.(JSON.stringify({ type: "receipt", status: "delivered", ids: [f.id] }));
  }
  close() {}
}

for (const bufferMs of [5000, 0]) {
  it(`a synchronously acking in-process client gets its sender a delivered tick (bufferMs ${bufferMs})`, async () => {
    const receipts = new ReceiptTracker({
      clock: new ManualClock(1_000_000),
      bufferMs,
      sweepIntervalMs: 0,
    });
    const { gateway, connect } = oneNode({ receipts });
    const alice = await connect("alice");
    const bob = new AutoAck();
    const conn = (await gateway.open(bob, { user: "bob", device: "d1" })) as Connection;
    bob.ack = (frame) => void gateway.receive(conn, frame);
    await gateway.receive(
      alice.conn,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
    );
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(alice.transport.frames.map((f) => `${f.type}:${"status" in f ? f.status : ""}`)).toEqual(
      ["receipt:sent", "receipt:delivered"],
    );
  });
}
