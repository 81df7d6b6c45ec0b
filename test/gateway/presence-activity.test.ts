import { describe, expect, it } from "vitest";
import {
  RelayClient,
  type SocketCloseEvent,
  type SocketMessageEvent,
  type WebSocketLike,
} from "../../src/client/index.js";
import { ManualClock, seededRandom, sequentialIds } from "../../src/core/index.js";
import {
  type Connection,
  Gateway,
  presenceBridge,
  type Transport,
} from "../../src/gateway/index.js";
import { PresenceTracker } from "../../src/presence/index.js";
import { Router } from "../../src/router/index.js";
import { FakeTransport } from "../support/fake-transport.js";

const T0 = 1_000_000;
type Handler<E> = ((event: E) => void) | null;

/**
 * One node with presence (threshold 10 s), and a WebSocket class that connects our own client
 * SDK to its gateway in-process: what the SDK writes goes into `Gateway.receive`, what the
 * gateway writes comes out as the socket's messages. One ManualClock drives both.
 */
function world() {
  const clock = new ManualClock(T0);
  const router = new Router({ clock, ids: sequentialIds() });
  const tracker = new PresenceTracker({ clock, thresholdMs: 10_000 });
  const gateway = new Gateway<{ user: string }>({
    router,
    clock,
    ids: sequentialIds("g"),
    authenticate: (c) => ({ userId: c.user, deviceId: "d1" }),
    presence: presenceBridge(tracker, router),
  });
  const flush = async () => {
    for (let i = 0; i < 30; i++) await Promise.resolve();
  };
  class InProcessSocket implements WebSocketLike {
    readyState = 0;
    onopen: Handler<unknown> = null;
    onmessage: Handler<SocketMessageEvent> = null;
    onclose: Handler<SocketCloseEvent> = null;
    onerror: Handler<unknown> = null;
    readonly written: string[] = [];
    #conn: Connection | undefined;

    constructor(url: string) {
      const user = new URL(url).searchParams.get("user")!;
      const transport: Transport = {
        bufferedAmount: 0,
        // A network in between: frames arrive after the write that caused them returned.
        send: (data) => queueMicrotask(() => this.onmessage?.({ data })),
        close: (code, reason) => {
          this.readyState = 3;
          this.onclose?.({ code, reason });
        },
      };
      void gateway.open(transport, { user }).then((conn) => {
        this.#conn = conn;
        this.readyState = 1;
        this.onopen?.({});
      });
      sockets.push(this);
    }

    send(data: string): void {
      this.written.push(JSON.parse(data).type);
      if (this.#conn) void gateway.receive(this.#conn, data);
    }

    close(): void {
      this.readyState = 3;
    }
  }
  const sockets: InProcessSocket[] = [];
  const client = (user: string) =>
    new RelayClient({
      url: `ws://relay.test/?user=${user}`,
      token: "t",
      userId: user,
      WebSocket: InProcessSocket,
      clock,
      random: seededRandom(1),
      reconnect: false,
    });
  /** A plain connection that watches presence frames. */
  const watcher = async (user: string, of: string) => {
    const transport = new FakeTransport();
    // It acks what it gets, as a client must (a silent connection is closed as unresponsive).
    const record = transport.send.bind(transport);
    transport.send = (data: string) => {
      record(data);
      const f = JSON.parse(data) as { type: string; id?: string };
      if (f.type === "message" && f.id !== undefined) {
        void gateway.receive(
          conn,
          JSON.stringify({ type: "receipt", status: "delivered", ids: [f.id] }),
        );
      }
    };
    const conn = (await gateway.open(transport, { user })) as Connection;
    await gateway.receive(conn, JSON.stringify({ type: "presence.subscribe", users: [of] }));
    await flush();
    const seen = () => transport.ofType("presence").map((p) => [p.status, p.lastSeen]);
    const say = (to: string, text: string) =>
      gateway.receive(
        conn,
        JSON.stringify({ type: "send", id: `w${++said}`, to: { user: to }, text }),
      );
    return Object.assign(seen, { say });
  };
  let said = 0;
  /** Moves the clock a second at a time, letting frames and timers run. */
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += 1_000) {
      clock.advance(Math.min(1_000, ms - t));
      await flush();
    }
  };
  return { clock, gateway, client, watcher, advance, flush, sockets };
}

describe("presence: keepalive pings are not activity", () => {
  it("an idle SDK client pinging every 25 s does not flip online/offline; last seen = connect", async () => {
    const w = world();
    const seen = await w.watcher("alice", "bob");
    const bob = w.client("bob");
    bob.connect();
    await w.flush();
    expect(bob.state).toBe("open");
    await w.advance(5 * 60_000); // five idle minutes: about a dozen pings, each answered
    expect(w.sockets[0]!.written.filter((t) => t === "ping").length).toBeGreaterThanOrEqual(10);
    expect(bob.state).toBe("open");
    expect(seen()).toEqual([
      ["offline", null],
      ["online", null],
      ["offline", T0],
    ]);
    bob.close();
  });

  it("last seen is the last activity: active() on focus or input, a send, a read (not a delivered ack)", async () => {
    const w = world();
    const seen = await w.watcher("alice", "bob");
    const bob = w.client("bob");
    bob.connect();
    await w.flush();
    await w.advance(60_000);
    const focusAt = w.clock.now();
    bob.active(); // the app got focus
    bob.active(); // and input right after: throttled, one frame
    await w.flush();
    expect(w.sockets[0]!.written.filter((t) => t === "active")).toHaveLength(1);
    await w.advance(60_000);
    expect(seen().slice(2)).toEqual([
      ["offline", T0],
      ["online", null],
      ["offline", focusAt],
    ]);
    const sendAt = w.clock.now();
    bob.send("alice", "hi");
    await w.advance(60_000);
    expect(seen().at(-1)).toEqual(["offline", sendAt]);
    expect(seen().at(-2)).toEqual(["online", null]);
    // A message arrives: the SDK acks it `delivered` by itself. That is not the user.
    const got: string[] = [];
    bob.on("message", (m) => got.push(m.conversation));
    await seen.say("bob", "there?");
    await w.advance(60_000);
    expect(got).toHaveLength(1);
    expect(w.sockets[0]!.written).toContain("receipt");
    expect(seen().at(-1)).toEqual(["offline", sendAt]);
    // The user reads it: that is.
    const readAt = w.clock.now();
    bob.markRead(got[0]!);
    await w.advance(60_000);
    expect(seen().slice(-2)).toEqual([
      ["online", null],
      ["offline", readAt],
    ]);
    bob.close();
  });
});
