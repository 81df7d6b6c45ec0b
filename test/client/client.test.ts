import { beforeEach, describe, expect, it } from "vitest";
import { WebSocket as WsWebSocket } from "ws";
import {
  type OutgoingStatus,
  RelayClient,
  type RelayClientOptions,
  tokenProtocols,
  type WebSocketConstructor,
} from "../../src/client/index.js";
import { isRelayError, ManualClock, sequentialIds } from "../../src/core/index.js";
import type { MessageFrame } from "../../src/protocol/index.js";
import { FakeSocket } from "./fake-socket.js";

const noJitter = { next: () => 0 };

function setup(extra: Partial<RelayClientOptions> = {}) {
  const clock = new ManualClock(1_000);
  const client = new RelayClient({
    url: "ws://test/",
    token: "alice:web",
    userId: "alice",
    WebSocket: FakeSocket,
    clock,
    ids: sequentialIds(),
    random: noJitter,
    ...extra,
  });
  const statuses: [string, OutgoingStatus, OutgoingStatus][] = [];
  client.on("status", (m, prev) => statuses.push([m.clientId, prev, m.status]));
  return { clock, client, statuses };
}

function message(id: string, seq: number, extra: Partial<MessageFrame> = {}): MessageFrame {
  return {
    type: "message",
    id,
    clientId: `cb${id}`,
    from: "bob",
    fromDevice: "phone",
    to: { user: "alice" },
    conversation: "dm:alice:bob",
    seq,
    ts: 5,
    text: `text ${id}`,
    ...extra,
  };
}

function sent(clientId: string, id: string, seq: number) {
  return {
    type: "receipt",
    status: "sent",
    clientId,
    id,
    conversation: "dm:alice:bob",
    seq,
    ts: 7,
  } as const;
}

const tick = () => Promise.resolve();

beforeEach(() => FakeSocket.reset());

describe("RelayClient: connecting", () => {
  it("offers the token as a percent-encoded subprotocol and opens", () => {
    const { client } = setup();
    const opened: number[] = [];
    client.on("open", () => opened.push(1));
    client.connect();
    expect(client.state).toBe("connecting");
    expect(FakeSocket.last.url).toBe("ws://test/");
    expect(FakeSocket.last.protocols).toEqual(["relaykit.v1", "token.alice%3Aweb"]);
    FakeSocket.last.serverOpen();
    expect(client.state).toBe("open");
    expect(opened).toEqual([1]);
    client.connect();
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("reconnects with exponential backoff through the clock and resets after an open", () => {
    const { client, clock } = setup({ reconnect: { initialDelay: 100, maxDelay: 1_000 } });
    const closes: (number | undefined)[] = [];
    client.on("close", (i) => closes.push(i.reconnectIn));
    client.connect();
    FakeSocket.last.serverClose(1006);
    expect(client.state).toBe("reconnecting");
    clock.advance(99);
    expect(FakeSocket.all).toHaveLength(1);
    clock.advance(1);
    expect(FakeSocket.all).toHaveLength(2);
    FakeSocket.last.serverClose(1006);
    clock.advance(200);
    FakeSocket.last.serverClose(1006);
    clock.advance(400);
    FakeSocket.last.serverClose(1006);
    clock.advance(800);
    FakeSocket.last.serverClose(1006);
    expect(closes).toEqual([100, 200, 400, 800, 1_000]);
    clock.advance(1_000);
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverClose(1006);
    expect(closes.at(-1)).toBe(100);
  });

  it("gives up on a connection attempt after connectTimeout and retries", () => {
    const { client, clock } = setup({ connectTimeout: 50, reconnect: { initialDelay: 10 } });
    client.connect();
    const first = FakeSocket.last;
    clock.advance(50);
    expect(first.closedWith?.code).toBe(4000);
    clock.advance(10);
    expect(FakeSocket.all).toHaveLength(2);
    // The dead socket's late events are ignored.
    first.serverOpen();
    expect(client.state).toBe("reconnecting");
  });

  it("stops after an unauthorized close (4401) and after close()", () => {
    const a = setup();
    a.client.connect();
    FakeSocket.last.serverClose(4401, "unauthorized");
    expect(a.client.state).toBe("closed");
    expect(a.clock.pending).toBe(0);

    FakeSocket.reset();
    const b = setup();
    b.client.connect();
    FakeSocket.last.serverOpen();
    b.client.close();
    expect(FakeSocket.last.closedWith?.code).toBe(1000);
    expect(b.client.state).toBe("closed");
    expect(b.clock.pending).toBe(0);
    b.clock.advance(60_000);
    expect(FakeSocket.all).toHaveLength(1);
  });

  it("drops a silent connection after a ping goes unanswered, and keeps a live one", () => {
    const { client, clock } = setup({ pingInterval: 1_000, pongTimeout: 500 });
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    clock.advance(1_000);
    expect(s.framesOf("ping")).toHaveLength(1);
    s.serverSend({ type: "pong", id: s.framesOf("ping")[0]!.id!, ts: 1 });
    clock.advance(1_499);
    expect(client.state).toBe("open");
    clock.advance(1_000);
    expect(client.state).toBe("reconnecting");
    expect(s.closedWith?.code).toBe(4000);
  });

  it("does not ping a connection that keeps talking", () => {
    const { client, clock } = setup({ pingInterval: 1_000, pongTimeout: 500 });
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    for (let i = 0; i < 10; i++) {
      clock.advance(600);
      s.serverSend({ type: "presence", user: "bob", status: "online", lastSeen: i });
    }
    expect(s.framesOf("ping")).toEqual([]);
    clock.advance(1_000);
    expect(s.framesOf("ping")).toHaveLength(1);
    expect(client.state).toBe("open");
  });

  it("refuses bad options with invalid_option", () => {
    const bad = [
      { url: "", token: "t", userId: "a", WebSocket: FakeSocket },
      { url: "ws://x", token: "t", userId: "a", WebSocket: FakeSocket, ackTimeout: 0 },
      { url: "ws://x", token: "t", userId: "a", WebSocket: FakeSocket, reconnect: { jitter: 2 } },
      // Node 20 has no global WebSocket: it must be passed.
      { url: "ws://x", token: "t", userId: "a" },
    ];
    for (const o of bad) {
      let caught: unknown;
      try {
        new RelayClient(o as RelayClientOptions);
      } catch (e) {
        caught = e;
      }
      expect(isRelayError(caught, "invalid_option")).toBe(true);
    }
  });

  it("accepts the ws package's class and the DOM WebSocket type", () => {
    const fromWs: WebSocketConstructor = WsWebSocket;
    const fromDom: WebSocketConstructor | undefined = (
      globalThis as { WebSocket?: typeof WebSocket }
    ).WebSocket;
    expect(typeof fromWs).toBe("function");
    expect(fromDom === undefined || typeof fromDom === "function").toBe(true);
    expect(tokenProtocols("jwt.abc-_")).toEqual(["relaykit.v1", "token.jwt.abc-_"]);
  });
});

describe("RelayClient: sending and receipts", () => {
  it("tracks ✓, ✓✓ and read for a sent message", () => {
    const { client, statuses } = setup();
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const out = client.send("bob", "hi");
    expect(out.status).toBe("pending");
    expect(s.framesOf("send")).toEqual([
      { type: "send", id: out.clientId, to: { user: "bob" }, text: "hi" },
    ]);
    s.serverSend(sent(out.clientId, "m1", 3));
    expect(client.outgoing(out.clientId)).toMatchObject({ status: "sent", id: "m1", seq: 3 });
    s.serverSend({ type: "receipt", status: "delivered", ids: ["m1"], by: "bob", ts: 8 });
    s.serverSend({ type: "receipt", status: "delivered", ids: ["m1"], by: "bob", ts: 8 });
    s.serverSend({
      type: "receipt",
      status: "read",
      conversation: "dm:alice:bob",
      upTo: 3,
      by: "bob",
      ts: 9,
    });
    // Late duplicates never move it back.
    s.serverSend({ type: "receipt", status: "delivered", ids: ["m1"], by: "bob", ts: 10 });
    expect(statuses).toEqual([
      [out.clientId, "pending", "sent"],
      [out.clientId, "sent", "delivered"],
      [out.clientId, "delivered", "read"],
    ]);
  });

  it("resends unacknowledged sends after a reconnect, in order, with the same client ids", () => {
    const { client, clock, statuses } = setup({ reconnect: { initialDelay: 100 } });
    const early = client.send("bob", "before connect");
    client.connect();
    const s1 = FakeSocket.last;
    s1.serverOpen();
    const a = client.send("bob", "a");
    const b = client.send("bob", "b");
    expect(s1.framesOf("send").map((f) => f.id)).toEqual([early.clientId, a.clientId, b.clientId]);
    s1.serverSend(sent(early.clientId, "m1", 1));
    s1.serverClose(1006);
    const c = client.send("bob", "while down");
    expect(client.pendingMessages().map((m) => m.clientId)).toEqual([
      a.clientId,
      b.clientId,
      c.clientId,
    ]);
    clock.advance(100);
    const s2 = FakeSocket.last;
    expect(s2).not.toBe(s1);
    s2.serverOpen();
    expect(s2.framesOf("send").map((f) => [f.id, f.text])).toEqual([
      [a.clientId, "a"],
      [b.clientId, "b"],
      [c.clientId, "while down"],
    ]);
    // The server dedupes by client id and answers each with its sent receipt.
    s2.serverSend(sent(a.clientId, "m2", 2));
    s2.serverSend(sent(b.clientId, "m3", 3));
    s2.serverSend(sent(c.clientId, "m4", 4));
    s2.serverSend(sent(a.clientId, "m2", 2));
    expect(client.pendingMessages()).toEqual([]);
    expect(statuses.filter(([, , to]) => to === "sent")).toHaveLength(4);
    s2.serverClose(1006);
    clock.advance(100);
    FakeSocket.last.serverOpen();
    expect(FakeSocket.last.framesOf("send")).toEqual([]);
  });

  it("resends a send whose sent receipt is overdue while the connection stays up", () => {
    const { client, clock } = setup({ ackTimeout: 1_000, pingInterval: 0 });
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const out = client.send("bob", "x");
    clock.advance(999);
    expect(s.framesOf("send")).toHaveLength(1);
    clock.advance(1);
    expect(s.framesOf("send").map((f) => f.id)).toEqual([out.clientId, out.clientId]);
    s.serverSend(sent(out.clientId, "m1", 1));
    clock.advance(10_000);
    expect(s.framesOf("send")).toHaveLength(2);
    expect(clock.pending).toBe(0);
  });

  it("resends each overdue send on its own deadline", () => {
    const { client, clock } = setup({ ackTimeout: 1_000, pingInterval: 0 });
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const a = client.send("bob", "a");
    clock.advance(500);
    const b = client.send("bob", "b");
    const ids = () => s.framesOf("send").map((f) => f.id);
    clock.advance(500);
    expect(ids()).toEqual([a.clientId, b.clientId, a.clientId]);
    clock.advance(499);
    expect(ids()).toHaveLength(3);
    clock.advance(1);
    expect(ids()).toEqual([a.clientId, b.clientId, a.clientId, b.clientId]);
  });

  it("applies receipts that overtake the sent receipt", () => {
    const { client, statuses } = setup();
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const a = client.send("bob", "a");
    const b = client.send("bob", "b");
    s.serverSend({ type: "receipt", status: "delivered", ids: ["m1"], by: "bob", ts: 8 });
    s.serverSend({
      type: "receipt",
      status: "read",
      conversation: "dm:alice:bob",
      upTo: 2,
      by: "bob",
      ts: 9,
    });
    s.serverSend(sent(a.clientId, "m1", 1));
    s.serverSend(sent(b.clientId, "m2", 2));
    expect(statuses).toEqual([
      [a.clientId, "pending", "sent"],
      [a.clientId, "sent", "delivered"],
      [a.clientId, "delivered", "read"],
      [b.clientId, "pending", "sent"],
      [b.clientId, "sent", "read"],
    ]);
  });

  it("does not take our own read sync from another device as the peer's read", () => {
    const { client, statuses } = setup();
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const a = client.send("bob", "a");
    s.serverSend(sent(a.clientId, "m1", 1));
    const receipts: string[] = [];
    client.on("receipt", (r) => receipts.push(r.status));
    s.serverSend({
      type: "receipt",
      status: "read",
      conversation: "dm:alice:bob",
      upTo: 5,
      by: "alice",
      device: "phone",
      ts: 9,
    });
    expect(statuses.map(([, , to]) => to)).toEqual(["sent"]);
    expect(receipts).toEqual(["read"]);
  });

  it("marks a refused send failed, keeps a transiently refused one pending", () => {
    const { client, clock, statuses } = setup({ ackTimeout: 1_000, pingInterval: 0 });
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const a = client.send("nobody", "a");
    const b = client.send("bob", "b");
    const rejected: string[] = [];
    client.on("rejected", (e) => rejected.push(e.code));
    s.serverSend({ type: "error", code: "recipient_unknown", message: "no", ref: a.clientId });
    s.serverSend({ type: "error", code: "rate_limited", message: "slow down", ref: b.clientId });
    expect(rejected).toEqual(["recipient_unknown", "rate_limited"]);
    expect(statuses).toEqual([[a.clientId, "pending", "failed"]]);
    expect(client.pendingMessages().map((m) => m.clientId)).toEqual([b.clientId]);
    clock.advance(1_000);
    expect(s.framesOf("send").map((f) => f.id)).toEqual([a.clientId, b.clientId, b.clientId]);
  });

  it("marks a message failed on a failed receipt unless it was delivered", () => {
    const { client, statuses } = setup();
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    const a = client.send("bob", "a");
    const b = client.send("bob", "b");
    s.serverSend(sent(a.clientId, "m1", 1));
    s.serverSend(sent(b.clientId, "m2", 2));
    s.serverSend({ type: "receipt", status: "delivered", ids: ["m2"], by: "bob", ts: 8 });
    for (const id of ["m1", "m2"]) {
      s.serverSend({ type: "receipt", status: "failed", ids: [id], reason: "ttl_expired", ts: 9 });
    }
    expect(statuses.filter(([, , to]) => to === "failed")).toEqual([
      [a.clientId, "sent", "failed"],
    ]);
    expect(client.outgoing(b.clientId)?.status).toBe("delivered");
  });

  it("refuses a send the server would refuse, synchronously", () => {
    const { client } = setup();
    expect(() => client.send("bad id!", "x")).toThrowError(/to/);
    expect(() => client.send("bob", "x".repeat(20_000))).toThrowError(/text/);
    expect(client.pendingMessages()).toEqual([]);
  });
});

describe("RelayClient: incoming", () => {
  it("drops duplicate messages but acks every copy as delivered, batched per turn", async () => {
    const { client } = setup();
    const got: string[] = [];
    client.on("message", (m, info) => got.push(`${m.id}:${info.own}`));
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    s.serverSend(message("m1", 1));
    s.serverSend(message("m2", 2));
    s.serverSend(message("m1", 1));
    await tick();
    expect(got).toEqual(["m1:false", "m2:false"]);
    expect(s.framesOf("receipt")).toEqual([
      { type: "receipt", status: "delivered", ids: ["m1", "m2", "m1"] },
    ]);
    // A redelivery after a reconnect is acked again, not shown again.
    s.serverSend(message("m2", 2));
    s.serverSend(message("m3", 3, { from: "alice", fromDevice: "phone", to: { user: "bob" } }));
    await tick();
    expect(got).toEqual(["m1:false", "m2:false", "m3:true"]);
    expect(s.framesOf("receipt").at(-1)).toEqual({
      type: "receipt",
      status: "delivered",
      ids: ["m2", "m3"],
    });
  });

  it("sends no delivered acks when autoDelivered is off", async () => {
    const { client } = setup({ autoDelivered: false });
    client.connect();
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverSend(message("m1", 1));
    await tick();
    expect(FakeSocket.last.framesOf("receipt")).toEqual([]);
  });

  it("reports an invalid server frame and keeps the connection", () => {
    const { client } = setup();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    client.connect();
    const s = FakeSocket.last;
    s.serverOpen();
    s.serverSend("{nope");
    s.serverSend({ type: "message", id: "m1" });
    s.serverSend({ type: "gossip" });
    expect(errors).toEqual(["bad_json", "invalid_field", "unknown_type"]);
    expect(client.state).toBe("open");
  });

  it("marks read by watermark (defaulting to the last seq) and by ids, queued while down", () => {
    const { client, clock } = setup({ reconnect: { initialDelay: 10 } });
    client.connect();
    const s1 = FakeSocket.last;
    s1.serverOpen();
    s1.serverSend(message("m1", 1));
    s1.serverSend(message("m2", 2));
    client.markRead("dm:alice:bob");
    client.markRead("dm:alice:bob", 1);
    client.markRead(["m1"]);
    expect(s1.framesOf("receipt").filter((r) => r.status === "read")).toEqual([
      { type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 2 },
      { type: "receipt", status: "read", ids: ["m1"] },
    ]);
    s1.serverClose(1006);
    client.markRead("dm:alice:bob", 5);
    client.markRead(["m4"]);
    clock.advance(10);
    FakeSocket.last.serverOpen();
    expect(FakeSocket.last.framesOf("receipt")).toEqual([
      { type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 5 },
      { type: "receipt", status: "read", ids: ["m4"] },
    ]);
  });

  it("a read watermark goes after the delivered acks of the messages it names", () => {
    const { client } = setup();
    client.connect();
    const s1 = FakeSocket.last;
    s1.serverOpen();
    s1.serverSend(message("m1", 1));
    // Read at once, in the same turn as the message arrived (a focused chat window).
    client.markRead("dm:alice:bob");
    expect(s1.framesOf("receipt")).toEqual([
      { type: "receipt", status: "delivered", ids: ["m1"] },
      { type: "receipt", status: "read", conversation: "dm:alice:bob", upTo: 1 },
    ]);
  });

  it("follows presence across reconnects and passes typing through", () => {
    const { client, clock } = setup({ reconnect: { initialDelay: 10 } });
    const seen: string[] = [];
    client.on("presence", (p) => seen.push(`${p.user}:${p.status}:${p.lastSeen}`));
    client.on("typing", (t) => seen.push(`typing:${t.from}:${t.state}`));
    client.subscribePresence(["bob"]);
    client.connect();
    const s1 = FakeSocket.last;
    s1.serverOpen();
    expect(s1.framesOf("presence.subscribe")).toEqual([
      { type: "presence.subscribe", users: ["bob"] },
    ]);
    s1.serverSend({ type: "presence", user: "bob", status: "offline", lastSeen: 42 });
    s1.serverSend({
      type: "typing",
      from: "bob",
      to: { user: "alice" },
      conversation: "dm:alice:bob",
      state: "composing",
    });
    expect(client.presenceOf("bob")).toEqual({ user: "bob", status: "offline", lastSeen: 42 });
    client.typing("bob");
    expect(s1.framesOf("typing")).toEqual([
      { type: "typing", to: { user: "bob" }, state: "composing" },
    ]);
    s1.serverClose(1006);
    client.typing("bob", "paused");
    clock.advance(10);
    const s2 = FakeSocket.last;
    s2.serverOpen();
    expect(s2.framesOf("presence.subscribe")).toEqual([
      { type: "presence.subscribe", users: ["bob"] },
    ]);
    expect(s2.framesOf("typing")).toEqual([]);
    client.unsubscribePresence(["bob"]);
    expect(s2.framesOf("presence.unsubscribe")).toEqual([
      { type: "presence.unsubscribe", users: ["bob"] },
    ]);
    expect(client.presenceOf("bob")).toBeUndefined();
    expect(seen).toEqual(["bob:offline:42", "typing:bob:composing"]);
  });
});
