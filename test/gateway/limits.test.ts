import { describe, expect, it } from "vitest";
import { CLOSE_CODES, Gateway, isRelayError, Router } from "../../src/index.js";
import { oneNode } from "../support/world.js";

const send = (id: string, to = "bob") => ({ type: "send", id, to: { user: to }, text: id });

describe("Gateway abuse limits", () => {
  it("answers sends over the per-connection rate with rate_limited and a retry-after, changing nothing", async () => {
    const w = oneNode(
      {},
      { rateLimits: { perConnection: { send: { perSecond: 10, burst: 5 } }, refusals: false } },
    );
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    for (let i = 1; i <= 6; i++) await a.send(send(`c${i}`));
    const sent = a.transport.ofType("receipt").filter((r) => r.status === "sent");
    expect(sent.map((r) => ("clientId" in r ? r.clientId : ""))).toEqual([
      "c1",
      "c2",
      "c3",
      "c4",
      "c5",
    ]);
    const errors = a.transport.ofType("error");
    expect(errors).toMatchObject([{ code: "rate_limited", ref: "c6", retryAfterMs: 100 }]);
    expect(b.transport.ofType("message").map((m) => m.text)).toEqual([
      "c1",
      "c2",
      "c3",
      "c4",
      "c5",
    ]);
    // Other kinds have buckets of their own.
    await a.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    await a.send({ type: "presence.subscribe", users: ["bob"] });
    await a.send({ type: "ping", id: "p1" });
    expect(a.transport.ofType("error")).toHaveLength(1);
    expect(a.transport.ofType("pong")).toHaveLength(1);
    // After the retry-after, the same send is accepted once, with its next sequence number.
    w.clock.advance(100);
    await a.send(send("c6"));
    expect(b.transport.ofType("message").map((m) => [m.text, m.seq])).toContainEqual(["c6", 6]);
    expect(a.transport.closedWith).toBeUndefined();
  });

  it("counts a user's sends over all its connections", async () => {
    const w = oneNode(
      {},
      {
        rateLimits: {
          perConnection: { send: { perSecond: 100, burst: 100 } },
          perUser: { send: { perSecond: 1, burst: 4 } },
        },
      },
    );
    const phone = await w.connect("alice", "phone");
    const laptop = await w.connect("alice", "laptop");
    await w.connect("bob");
    await phone.send(send("p1"));
    await phone.send(send("p2"));
    await laptop.send(send("l1"));
    await laptop.send(send("l2"));
    await laptop.send(send("l3"));
    expect(laptop.transport.ofType("error")).toMatchObject([
      { code: "rate_limited", ref: "l3", retryAfterMs: 1000 },
    ]);
    expect(phone.transport.ofType("error")).toEqual([]);
  });

  it("limits typing and presence subscriptions separately (a subscribe costs one per user)", async () => {
    const w = oneNode(
      {},
      {
        rateLimits: {
          perConnection: {
            typing: { perSecond: 1, burst: 2 },
            subscribe: { perSecond: 1, burst: 3 },
          },
        },
      },
    );
    const a = await w.connect("alice");
    await w.connect("bob");
    for (let i = 0; i < 3; i++) {
      await a.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    }
    await a.send({ type: "presence.subscribe", users: ["u1", "u2"] });
    await a.send({ type: "presence.subscribe", users: ["u3", "u4"] });
    await a.send(send("c1"));
    expect(a.transport.ofType("error").map((e) => [e.code, e.retryAfterMs])).toEqual([
      ["rate_limited", 1000],
      ["rate_limited", 1000],
    ]);
    expect(a.transport.ofType("receipt")).toMatchObject([{ status: "sent", clientId: "c1" }]);
  });

  it("closes a connection that keeps sending after rate_limited answers (4429)", async () => {
    const w = oneNode(
      {},
      {
        rateLimits: {
          perConnection: { send: { perSecond: 1, burst: 1 } },
          refusals: { perSecond: 1, burst: 3 },
        },
      },
    );
    const a = await w.connect("alice");
    const b = await w.connect("bob");
    for (let i = 1; i <= 6; i++) await a.send(send(`c${i}`));
    expect(a.transport.ofType("error").map((e) => e.code)).toEqual([
      "rate_limited",
      "rate_limited",
      "rate_limited",
      "rate_limited",
    ]);
    expect(a.transport.closedWith).toEqual({ code: CLOSE_CODES.flooding, reason: "flooding" });
    expect(w.gateway.size).toBe(1);
    await b.send(send("ok", "alice"));
    expect(b.transport.ofType("receipt")).toMatchObject([{ status: "sent", clientId: "ok" }]);
  });

  it("caps connections and distinct device ids per user (4410); a known device still connects", async () => {
    const w = oneNode({}, { maxConnectionsPerUser: 2, maxDevicesPerUser: 3 });
    const one = await w.connect("alice", "d1");
    const two = await w.connect("alice", "d2");
    const third = await w.connect("alice", "d3");
    expect(third.conn).toBeUndefined();
    expect(third.transport.closedWith).toEqual({
      code: CLOSE_CODES.tooMany,
      reason: "too_many_connections",
    });
    await w.gateway.closed(one.conn);
    expect((await w.connect("alice", "d3")).conn).toBeDefined();
    // d1, d2, d3 are linked: a fourth device id is refused even with a free connection slot.
    await w.gateway.closed(two.conn);
    const fourth = await w.connect("alice", "d4");
    expect(fourth.conn).toBeUndefined();
    expect(fourth.transport.closedWith).toEqual({
      code: CLOSE_CODES.tooMany,
      reason: "too_many_devices",
    });
    expect((await w.connect("alice", "d1")).conn).toBeDefined();
    // Another user is not affected.
    expect((await w.connect("bob", "d1")).conn).toBeDefined();
  });

  it("caps presence subscriptions per connection with limit_exceeded, refusing the whole frame", async () => {
    const w = oneNode({}, { maxSubscriptionsPerConnection: 3 });
    const a = await w.connect("alice");
    await a.send({ type: "presence.subscribe", users: ["u1", "u2"] });
    await a.send({ type: "presence.subscribe", users: ["u2", "u3", "u4"] });
    expect(a.transport.ofType("error").map((e) => e.code)).toEqual(["limit_exceeded"]);
    await a.send({ type: "presence.subscribe", users: ["u2", "u3"] });
    await a.send({ type: "presence.unsubscribe", users: ["u1"] });
    await a.send({ type: "presence.subscribe", users: ["u4"] });
    expect(a.transport.ofType("error")).toHaveLength(1);
  });

  it("refuses frames past maxPendingFrames with overloaded while earlier ones wait", async () => {
    const gates: (() => void)[] = [];
    const w = oneNode(
      {
        hooks: {
          beforeSend: () =>
            new Promise<undefined>((resolve) => gates.push(() => resolve(undefined))),
        },
      },
      { maxPendingFrames: 2 },
    );
    const a = await w.connect("alice");
    await w.connect("bob");
    const p1 = a.send(send("c1"));
    const p2 = a.send(send("c2"));
    await w.flush();
    await a.send(send("c3"));
    expect(a.transport.ofType("error")).toMatchObject([{ code: "overloaded", ref: "c3" }]);
    while (gates.length > 0 || a.transport.ofType("receipt").length < 2) {
      gates.shift()?.();
      await w.flush();
    }
    await Promise.all([p1, p2]);
    expect(a.transport.ofType("receipt").map((r) => ("clientId" in r ? r.clientId : ""))).toEqual([
      "c1",
      "c2",
    ]);
  });

  it("validates the limit options at construction", () => {
    const bad: Record<string, unknown>[] = [
      { maxConnectionsPerUser: 0 },
      { maxDevicesPerUser: 1.5 },
      { maxSubscriptionsPerConnection: -1 },
      { maxPendingFrames: "many" },
      { rateLimits: { perConnection: { send: { perSecond: 0, burst: 1 } } } },
      { rateLimits: { perUser: { typing: { perSecond: 1, burst: 0 } } } },
      { rateLimits: { refusals: true } },
    ];
    for (const extra of bad) {
      let caught: unknown;
      try {
        new Gateway({ router: new Router(), authenticate: () => undefined, ...extra });
      } catch (e) {
        caught = e;
      }
      expect(isRelayError(caught, "invalid_option"), JSON.stringify(extra)).toBe(true);
    }
    expect(
      () =>
        new Gateway({
          router: new Router(),
          authenticate: () => undefined,
          rateLimits: false,
          maxConnectionsPerUser: 1,
        }),
    ).not.toThrow();
  });
});
