import { expect, it } from "vitest";
import { ManualClock } from "../../src/core/clock.js";
import { sequentialIds } from "../../src/core/random.js";
import { type Connection, Gateway, type Transport } from "../../src/gateway/index.js";
import { ReceiptTracker } from "../../src/receipts/index.js";
import { Router } from "../../src/router/index.js";
import { FakeTransport } from "../support/fake-transport.js";

/** An in-process client that acks every message the moment it is written to it. */
class AutoAck implements Transport {
  frames: { type: string; status?: string }[] = [];
  bufferedAmount = 0;
  gw!: Gateway<{ user: string }>;
  conn!: Connection;
  send(data: string) {
    const f = JSON.parse(data);
    this.frames.push(f);
    if (f.type === "message" && this.conn)
      void this.gw.receive(
        this.conn,
        JSON.stringify({ type: "receipt", status: "delivered", ids: [f.id] }),
      );
  }
  close() {}
}

for (const bufferMs of [5000, 0]) {
  it(`a synchronously acking in-process client gets its sender a delivered tick (bufferMs ${bufferMs})`, async () => {
    const clock = new ManualClock(1_000_000);
    const receipts = new ReceiptTracker({ clock, bufferMs, sweepIntervalMs: 0 });
    const router = new Router({ clock, ids: sequentialIds(), receipts });
    const gw = new Gateway<{ user: string }>({
      router,
      clock,
      ids: sequentialIds("g"),
      authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
    });
    const at = new FakeTransport();
    const a = (await gw.open(at, { user: "alice" })) as Connection;
    const bt = new AutoAck();
    bt.gw = gw;
    bt.conn = (await gw.open(bt, { user: "bob" })) as Connection;
    await gw.receive(
      a,
      JSON.stringify({ type: "send", id: "c1", to: { user: "bob" }, text: "hi" }),
    );
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(at.frames.map((f) => `${f.type}:${"status" in f ? f.status : ""}`)).toEqual([
      "receipt:sent",
      "receipt:delivered",
    ]);
  });
}
