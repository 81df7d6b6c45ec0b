/**
 * relaykit/metrics through the single-node demo: real sockets, real traffic, then a scrape
 * of `/metrics` over HTTP, with every count checked against what was sent.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type DemoServer, startServer } from "../../../examples/single-node/app.js";
import type { MessageFrame, ServerFrame } from "../../../src/protocol/index.js";
import { DeliveryQueue } from "../../../src/queue/index.js";
import { TestClient } from "./ws-helpers.js";

let app: DemoServer | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.terminate();
  await app?.close();
  app = undefined;
});

async function open(url: string, token: string) {
  const c = TestClient.open(url, token);
  clients.push(c);
  await c.opened;
  c.send({ type: "ping", id: "p" });
  await c.waitFor((f: ServerFrame) => f.type === "pong");
  return c;
}

/** `name{labels} value` lines of a Prometheus text exposition, as a map. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe("relaykit/metrics on the single-node demo", () => {
  it("counts connections, frames, messages, receipts and latencies, scraped at /metrics", async () => {
    app = await startServer({ port: 0 });
    const alice = await open(app.wsUrl, "alice:phone");
    const bob = await open(app.wsUrl, "bob:web");
    // Counting must not switch the outbox's roster fast path off (a `delivered` listener would).
    const outbox = app.router.outbox;
    expect(outbox).toBeInstanceOf(DeliveryQueue);
    expect((outbox as DeliveryQueue).listenerCount("delivered")).toBe(0);

    for (const id of ["a1", "a2", "a3"]) {
      alice.send({ type: "send", id, to: { user: "bob" }, text: `hi ${id}` });
      const m = await bob.waitFor<MessageFrame>((f) => f.type === "message" && f.clientId === id);
      bob.send({ type: "receipt", status: "delivered", ids: [m.id] });
      await alice.waitFor(
        (f) => f.type === "receipt" && f.status === "delivered" && f.ids.includes(m.id),
      );
    }
    bob.send({ type: "nonsense" });
    await bob.waitFor((f) => f.type === "error");

    const res = await fetch(`${app.httpUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const m = parse(await res.text());
    expect(m.get("relaykit_connections")).toBe(2);
    expect(m.get('relaykit_frames_in_total{type="ping"}')).toBe(2);
    expect(m.get('relaykit_frames_in_total{type="send"}')).toBe(3);
    expect(m.get('relaykit_frames_in_total{type="receipt"}')).toBe(3);
    expect(m.get('relaykit_frames_in_total{type="unknown"}')).toBe(1);
    expect(m.get('relaykit_frames_out_total{type="message"}')).toBe(3);
    expect(m.get('relaykit_frames_out_total{type="pong"}')).toBe(2);
    expect(m.get('relaykit_frames_out_total{type="error"}')).toBe(1);
    // alice: three `sent` and three `delivered` receipts.
    expect(m.get('relaykit_frames_out_total{type="receipt"}')).toBe(6);
    expect(m.get('relaykit_receipts_in_total{status="delivered"}')).toBe(3);
    expect(m.get("relaykit_messages_accepted_total")).toBe(3);
    expect(m.get("relaykit_messages_delivered_total")).toBe(3);
    expect(m.get("relaykit_messages_failed_total")).toBe(0);
    expect(m.get("relaykit_queue_depth")).toBe(0);
    expect(m.get("relaykit_presence_users")).toBe(2);
    expect(m.get("relaykit_accept_to_delivery_seconds_count")).toBe(3);
    expect(m.get("relaykit_delivery_to_ack_seconds_count")).toBe(3);
    expect(m.get('relaykit_delivery_to_ack_seconds_bucket{le="+Inf"}')).toBe(3);

    // A scrape reads the outbox counters again; they do not double.
    const again = parse(await (await fetch(`${app.httpUrl}/metrics`)).text());
    expect(again.get("relaykit_messages_delivered_total")).toBe(3);
  });

  it("counts nothing once closed, and the gateway works as before", async () => {
    app = await startServer({ port: 0 });
    app.metrics.close();
    const alice = await open(app.wsUrl, "alice:phone");
    alice.send({ type: "send", id: "x", to: { user: "alice" }, text: "note to self" });
    await alice.waitFor((f) => f.type === "receipt" && f.status === "sent");
    const m = parse(await app.metrics.metrics());
    expect(m.get('relaykit_frames_in_total{type="send"}')).toBeUndefined();
    expect(m.get("relaykit_messages_accepted_total")).toBe(0);
  });
});
