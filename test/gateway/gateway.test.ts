import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CLOSE_CODES,
  type Connection,
  type DeliveryQueue,
  type DeviceId,
  deviceKey,
  Gateway,
  MemorySessionDirectory,
  RelayError,
  Router,
  type Session,
  type SessionId,
  sequentialIds,
  type UserId,
} from "../../src/index.js";
import { FakeTransport } from "../support/fake-transport.js";
import { oneNode } from "../support/world.js";

describe("Gateway", () => {
  it("refuses a connection the authenticate hook rejects, with 4401", async () => {
    const router = new Router();
    for (const authenticate of [
      () => undefined,
      () => Promise.reject(new Error("no")),
      () => ({ userId: "bad id", deviceId: "d" }),
    ]) {
      const gw = new Gateway({ router, authenticate });
      const t = new FakeTransport();
      expect(await gw.open(t, {})).toBeUndefined();
      expect(t.closedWith).toEqual({ code: CLOSE_CODES.unauthorized, reason: "unauthorized" });
      expect(gw.size).toBe(0);
    }
  });

  it("throws invalid_option without an authenticate hook", () => {
    expect(() => new Gateway({ router: new Router() } as never)).toThrow(/authenticate/);
  });

  it("answers a bad frame with an error frame and keeps the connection working", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await a.send("a JSON string, not an object");
    await w.gateway.receive(a.conn, "{not json");
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: 42 });
    await a.send({ type: "warp" });
    expect(a.transport.ofType("error").map((e) => e.code)).toEqual([
      "invalid_field",
      "bad_json",
      "invalid_field",
      "unknown_type",
    ]);
    expect(a.transport.closedWith).toBeUndefined();
    await a.send({ type: "send", id: "c2", to: { user: "bob" }, text: "still here" });
    expect(b.transport.ofType("message").map((m) => m.text)).toEqual(["still here"]);
    expect(b.transport.ofType("message")[0]!.seq).toBe(1);
  });

  it("a connection closed while it is still connecting leaves no session behind", async () => {
    const router = new Router({ ids: sequentialIds("m") });
    const gw = new Gateway<{ user: string }>({
      router,
      ids: sequentialIds("s"),
      authenticate: (c) => ({ userId: c.user, deviceId: "phone" }),
    });
    const opening = gw.open(new FakeTransport(), { user: "bob" });
    let conn: Connection | undefined;
    for (let i = 0; i < 50 && !conn; i++) {
      await Promise.resolve();
      conn = gw.connection("ss1" as SessionId);
    }
    expect(conn).toBeDefined();
    await gw.closed(conn!, { clean: false }); // the socket died mid-connect
    expect(await opening).toBeUndefined();
    expect(await router.directory.lookup("bob" as UserId)).toEqual([]);
    expect(
      (router.outbox as DeliveryQueue).isOnline(deviceKey("bob" as UserId, "phone" as DeviceId)),
    ).toBe(false);
  });

  it("closes a connection whose registration failed instead of keeping it half-registered", async () => {
    let down = true;
    class FlakyDirectory extends MemorySessionDirectory {
      override async register(s: Session): Promise<void> {
        if (down) throw new RelayError("store_unavailable", "directory down");
        return super.register(s);
      }
    }
    const flaky = new FlakyDirectory();
    const router = new Router({ directory: flaky, ids: sequentialIds("m") });
    const gw = new Gateway<{ user: string }>({
      router,
      ids: sequentialIds("s"),
      authenticate: (c) => ({ userId: c.user, deviceId: "phone" }),
    });
    const t = new FakeTransport();
    expect(await gw.open(t, { user: "bob" })).toBeUndefined();
    expect(t.closedWith).toEqual({ code: CLOSE_CODES.internal, reason: "connect_failed" });
    expect(t.ofType("error")).toMatchObject([{ code: "store_unavailable" }]);
    expect(gw.size).toBe(0);
    down = false;
    const again = new FakeTransport();
    expect(await gw.open(again, { user: "bob" })).toBeDefined();
    expect((await router.directory.lookup("bob" as UserId)).length).toBe(1);
  });

  it("answers ping with pong", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    await a.send({ type: "ping", id: "p1" });
    expect(a.transport.ofType("pong")).toEqual([{ type: "pong", id: "p1", ts: w.clock.now() }]);
  });

  it("disconnects a slow consumer with 4408 and keeps its messages for the next connection", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    b.transport.bufferedAmount = 2 * 1024 * 1024;
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "queued" });
    expect(b.transport.closedWith).toEqual({
      code: CLOSE_CODES.slowConsumer,
      reason: "slow_consumer",
    });
    await w.flush();
    expect(w.gateway.size).toBe(1);
    const again = await w.connect("bob");
    await w.flush();
    expect(again.transport.ofType("message").map((m) => m.text)).toEqual(["queued"]);
  });

  it("with slowConsumerMs, a consumer over the limit is closed only if it still is after the grace", async () => {
    const w = oneNode({}, { slowConsumerMs: 500, maxBufferedBytes: 1024 });
    const a = await w.connect("alice");
    const fast = await w.connect("bob");
    const slow = await w.connect("carol");
    fast.transport.bufferedAmount = 4096;
    slow.transport.bufferedAmount = 4096;
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "burst" });
    await a.send({ type: "send", id: "c2", to: { user: "carol" }, text: "burst" });
    // Over the limit, but written and not closed yet.
    expect(fast.transport.ofType("message")).toHaveLength(1);
    expect(slow.transport.ofType("message")).toHaveLength(1);
    expect(fast.transport.closedWith).toBeUndefined();
    fast.transport.bufferedAmount = 0; // bob reads it all within the grace
    w.clock.advance(499);
    expect(slow.transport.closedWith).toBeUndefined();
    w.clock.advance(1);
    expect(fast.transport.closedWith).toBeUndefined();
    expect(slow.transport.closedWith).toEqual({
      code: CLOSE_CODES.slowConsumer,
      reason: "slow_consumer",
    });
    expect(() => oneNode({}, { slowConsumerMs: -1 })).toThrow(/slowConsumerMs/);
  });

  it("with slowConsumerMs, a consumer that drained within the grace gets a whole grace for its next overage", async () => {
    const w = oneNode({}, { slowConsumerMs: 500, maxBufferedBytes: 1024 });
    const a = await w.connect("alice");
    const bob = await w.connect("bob");
    bob.transport.bufferedAmount = 4096; // burst 1 at t=0
    await a.send({ type: "send", id: "c1", to: { user: "bob" }, text: "burst" });
    w.clock.advance(100);
    bob.transport.bufferedAmount = 0; // drained at t=100
    w.clock.advance(390);
    bob.transport.bufferedAmount = 4096; // burst 2 at t=490
    await a.send({ type: "send", id: "c2", to: { user: "bob" }, text: "burst" });
    w.clock.advance(10);
    expect(bob.transport.closedWith).toBeUndefined();
    w.clock.advance(500); // burst 2 never drained: its own grace is over
    expect(bob.transport.closedWith?.code).toBe(CLOSE_CODES.slowConsumer);
    expect(() => oneNode({}, { maxBufferedBytes: 0 })).toThrow(/maxBufferedBytes/);
  });

  it("garbage frames never change state or close the connection (fast-check)", async () => {
    const w = oneNode();
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((v) => JSON.stringify(v) ?? ""),
        ),
        async (raw) => {
          await w.gateway.receive(a.conn, raw);
        },
      ),
      { numRuns: 300 },
    );
    await w.flush();
    expect(a.transport.closedWith).toBeUndefined();
    expect(b.transport.ofType("message")).toEqual([]);
    await a.send({ type: "send", id: "after", to: { user: "bob" }, text: "ok" });
    expect(b.transport.ofType("message")).toMatchObject([{ text: "ok", seq: 1 }]);
  });
});
