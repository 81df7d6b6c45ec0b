import { describe, expect, it } from "vitest";
import {
  conversationId,
  type DeviceKey,
  deviceId,
  deviceKey,
  type Envelope,
  isRelayError,
  ManualClock,
  type MessageId,
  messageId,
  RelayError,
  seededRandom,
  userId,
} from "../../src/core/index.js";
import {
  DeliveryQueue,
  type DeliveryQueueOptions,
  type FailReason,
  LoadSignal,
  MemoryQueueStore,
  type QueueStore,
  resolveRetryPolicy,
  retryDelay,
  sentBy,
} from "../../src/queue/index.js";
import { asyncStore, dev, envelope } from "./helpers.js";

const phone = dev("phone");
const laptop = dev("laptop");

interface Sent {
  t: number;
  device: DeviceKey;
  id: string;
  attempt: number;
}

/**
 * `reconnect`: a connection that stops acking is closed at its ack deadline (`ackGraceMs`
 * 0) and the device connects again at once, so each redelivery goes to a new connection.
 */
function setup(opts: Partial<DeliveryQueueOptions> = {}, { reconnect = false } = {}) {
  const clock = new ManualClock();
  const store = (opts.store as MemoryQueueStore | undefined) ?? new MemoryQueueStore();
  const sent: Sent[] = [];
  const failed: Array<{ t: number; id: string; device: DeviceKey; reason: FailReason }> = [];
  const load = new LoadSignal({ clock, histogram: false });
  const q = new DeliveryQueue({
    clock,
    store,
    load,
    random: seededRandom(1),
    storeRetry: false,
    transmit: (device, env, attempt) => sent.push({ t: clock.now(), device, id: env.id, attempt }),
    onFailed: (env, device, reason) => failed.push({ t: clock.now(), id: env.id, device, reason }),
    ...(reconnect
      ? {
          ackGraceMs: 0,
          onUnresponsive: (device: DeviceKey) => {
            q.deviceDisconnected(device);
            q.deviceConnected(device);
          },
        }
      : {}),
    ...opts,
  });
  const ids = (device?: DeviceKey) =>
    sent.filter((s) => device === undefined || s.device === device).map((s) => s.id);
  return { clock, store, sent, failed, q, load, ids };
}

/** `envelope(n, lane)` in a conversation of its own lane (lanes never reorder one conversation). */
const laned = (n: number, lane: "high" | "normal" | "low") => ({
  ...envelope(n, lane),
  conversation: conversationId(`dm:alice:bob:${lane}`),
});

const on = () => true;
const off = () => false;
const mid = (n: number): MessageId => messageId(`m${n}`);

describe("DeliveryQueue: redelivery", () => {
  it("retries on the exact p-retry schedule, then fails once with attempts_exhausted", async () => {
    const { clock, q, sent, failed, store } = setup(
      {
        retry: { retries: 3, minTimeout: 1000, factor: 2 },
      },
      { reconnect: true },
    );
    expect(await q.enqueue(envelope(1), [phone], { online: on })).toEqual({ ok: true });
    clock.advance(60_000);
    expect(sent.map((s) => [s.t, s.attempt])).toEqual([
      [0, 1],
      [1000, 2],
      [3000, 3],
      [7000, 4],
    ]);
    expect(failed).toEqual([{ t: 15_000, id: "m1", device: phone, reason: "attempts_exhausted" }]);
    expect(q.depth).toBe(0);
    expect(await store.count(phone)).toBe(0);
    clock.advance(40 * 86_400_000);
    expect(failed).toHaveLength(1);
    expect(q.stats).toMatchObject({ transmitted: 4, retried: 3, exhausted: 1, failed: 1 });
  });

  it("uses each lane's own policy and caps at maxTimeout", async () => {
    const { clock, q, sent } = setup(
      {
        retry: { retries: 4, minTimeout: 1000, factor: 2, maxTimeout: 3000 },
        lanes: { high: { retry: { minTimeout: 100, factor: 3 } } },
      },
      { reconnect: true },
    );
    await q.enqueue(envelope(1, "high"), [phone], { online: on });
    await q.enqueue(envelope(2, "low"), [laptop], { online: on });
    clock.advance(100_000);
    const times = (d: DeviceKey) => sent.filter((s) => s.device === d).map((s) => s.t);
    expect(times(phone)).toEqual([0, 100, 400, 1300, 4000]); // 100, 300, 900, 2700
    expect(times(laptop)).toEqual([0, 1000, 3000, 6000, 9000]); // 1000, 2000, 3000, 3000
    expect(q.policy("high")).toMatchObject({
      minTimeout: 100,
      factor: 3,
      retries: 4,
      maxTimeout: 3000,
    });
  });

  it("randomize draws jitter from the injected random source", async () => {
    const policy = { retries: 3, minTimeout: 1000, factor: 2, randomize: true };
    const { clock, q, sent } = setup(
      { retry: policy, random: seededRandom("j") },
      { reconnect: true },
    );
    await q.enqueue(envelope(1), [phone], { online: on });
    clock.advance(100_000);
    const r = seededRandom("j");
    const p = resolveRetryPolicy(policy);
    const d1 = retryDelay(p, 1, r);
    const d2 = retryDelay(p, 2, r);
    const d3 = retryDelay(p, 3, r);
    expect(sent.map((s) => s.t)).toEqual([0, d1, d1 + d2, d1 + d2 + d3]);
    expect(d1).not.toBe(1000);
  });

  it("an ack stops the retries and removes the entry from the store", async () => {
    const { clock, q, sent, failed, store } = setup({ retry: { retries: 3 } }, { reconnect: true });
    await q.enqueue(envelope(1), [phone, laptop], { online: on });
    clock.advance(1000);
    expect(await q.ack(phone, [mid(1), messageId("unknown")])).toBe(1);
    expect(await q.ack(phone, [mid(1)])).toBe(0);
    clock.advance(100_000);
    expect(sent.filter((s) => s.device === phone)).toHaveLength(2);
    expect(failed.map((f) => f.device)).toEqual([laptop]);
    expect(await store.count(phone)).toBe(0);
    expect(q.stats.delivered).toBe(1);
  });

  it("a transmit that throws counts as a lost transmission", async () => {
    let calls = 0;
    const { clock, q } = setup(
      {
        retry: { retries: 2 },
        transmit: () => {
          calls++;
          throw new Error("socket gone");
        },
      },
      { reconnect: true },
    );
    const errors: unknown[] = [];
    q.on("callbackError", (e, _d, which) => errors.push(`${which}: ${(e as Error).message}`));
    await q.enqueue(envelope(1), [phone], { online: on });
    clock.advance(1000);
    expect(calls).toBe(2);
    expect(errors).toEqual(["transmit: socket gone", "transmit: socket gone"]);
    expect(q.pending(phone)).toBe(1);
  });

  it("an onFailed that throws does not stall expiry of the others", async () => {
    const failed: string[] = [];
    const { clock, q } = setup({
      ttlMs: 1000,
      onFailed: (e) => {
        failed.push(e.id);
        throw new Error("router bug");
      },
    });
    const errors: string[] = [];
    q.on("callbackError", (_e, _d, which) => errors.push(which));
    await q.enqueue(envelope(1), [phone], { online: off });
    await q.enqueue(envelope(2), [phone], { online: off });
    clock.advance(500);
    await q.enqueue(envelope(3), [phone], { online: off });
    clock.advance(2000);
    expect(failed).toEqual(["m1", "m2", "m3"]);
    expect(errors).toEqual(["onFailed", "onFailed", "onFailed"]);
    expect(q.depth).toBe(0);
  });
});

describe("DeliveryQueue: FIFO per device", () => {
  it("window 1: a later message waits for the earlier one's ack, even across retries", async () => {
    const { clock, q, ids } = setup({ window: 1 }, { reconnect: true });
    for (const n of [1, 2, 3]) await q.enqueue(envelope(n), [phone], { online: on });
    expect(ids()).toEqual(["m1"]);
    clock.advance(1000); // m1 lost: retried alone
    expect(ids()).toEqual(["m1", "m1"]);
    await q.ack(phone, [mid(1)]);
    expect(ids()).toEqual(["m1", "m1", "m2"]);
    await q.ack(phone, [mid(2)]);
    await q.ack(phone, [mid(3)]);
    expect(ids()).toEqual(["m1", "m1", "m2", "m3"]);
    expect(q.depth).toBe(0);
  });

  it("retransmits due entries in order, and never lets a later one go before an earlier one", async () => {
    const { clock, q, sent } = setup({ window: 3 }, { reconnect: true });
    for (const n of [1, 2, 3, 4]) await q.enqueue(envelope(n), [phone], { online: on });
    expect(sent.map((s) => s.id)).toEqual(["m1", "m2", "m3"]);
    clock.advance(1000);
    expect(sent.slice(3).map((s) => `${s.id}#${s.attempt}`)).toEqual(["m1#2", "m2#2", "m3#2"]);
    await q.ack(phone, [mid(2)]); // frees a slot: m4 goes out after everything before it
    expect(sent.at(-1)?.id).toBe("m4");
    // m4's deadline (2000) closes the connection first: the next one gets every unacked
    // entry again, in order (each redelivery goes to a new connection).
    clock.advance(1000);
    const round = sent.filter((s) => s.t === 2000).map((s) => `${s.id}#${s.attempt}`);
    expect(round).toEqual(["m1#3", "m3#3", "m4#2"]);
  });

  it("keeps FIFO when the router acks synchronously inside transmit", async () => {
    const order: string[] = [];
    let q!: DeliveryQueue;
    const env = setup({
      window: 1,
      transmit: (d, e) => {
        order.push(e.id);
        void q.ack(d, [e.id]);
      },
    });
    q = env.q;
    for (const n of [1, 2, 3]) await q.enqueue(envelope(n), [phone], { online: off });
    q.deviceConnected(phone);
    await q.enqueue(envelope(4), [phone]);
    expect(order).toEqual(["m1", "m2", "m3", "m4"]);
    expect(q.depth).toBe(0);
    expect(env.clock.pending).toBeLessThanOrEqual(2); // lazy timers: one device, one expiry
  });
});

describe("DeliveryQueue: many entries per device", () => {
  it("acks find entries in any order, also after the device's id index came and went", async () => {
    // More than 8 entries give the device an id index; it must follow every later change.
    const { q, ids } = setup({ window: 100 });
    const lanes = ["high", "normal", "low"] as const;
    for (let n = 1; n <= 12; n++)
      await q.enqueue(envelope(n, lanes[n % 3]), [phone], { online: off });
    expect(q.pending(phone)).toBe(12);
    expect(await q.ack(phone, [5, 1, 12, 7].map(mid))).toBe(4);
    expect(await q.ack(phone, [mid(7)])).toBe(0);
    for (let n = 13; n <= 15; n++) await q.enqueue(envelope(n, "normal"), [phone], { online: off });
    // Down to 8, then new entries again: each is found by its ack.
    expect(await q.ack(phone, [2, 3, 4, 6, 8, 9, 10].map(mid))).toBe(7);
    await q.enqueue(envelope(16), [phone], { online: off });
    expect(await q.ack(phone, [mid(16), mid(14)])).toBe(2);
    expect(q.pending(phone)).toBe(3);
    q.deviceConnected(phone);
    expect(ids()).toEqual(["m11", "m13", "m15"]);
    expect(await q.ack(phone, [11, 13, 15].map(mid))).toBe(3);
    expect(q.depth).toBe(0);
    // Empty again: a fresh start, scanned without an index.
    await q.enqueue(envelope(17), [phone]);
    expect(await q.ack(phone, [mid(17)])).toBe(1);
    expect(q.stats.delivered).toBe(17);
  });
});

describe("DeliveryQueue: the synchronous face", () => {
  it("is offered over the memory store, shared or not, never over an async store", () => {
    const transmit = () => {};
    const mem = new DeliveryQueue({ transmit, store: new MemoryQueueStore() });
    expect(mem.sync).toBe(mem);
    expect(new DeliveryQueue({ transmit }).sync).toBeDefined();
    const shared = new DeliveryQueue({
      transmit,
      store: new MemoryQueueStore(),
      sharedStore: true,
    });
    expect(shared.sync).toBe(shared);
    const asyncOnly = new DeliveryQueue({ transmit, store: asyncStore(new MemoryQueueStore()) });
    expect(asyncOnly.sync).toBeUndefined();
    for (const call of [
      () => asyncOnly.enqueueSync(envelope(1), [phone]),
      () => asyncOnly.ackSync(phone, [mid(1)]),
      () =>
        asyncOnly.checkDuplicateSync(
          deviceKey(userId("alice"), deviceId("a1")),
          envelope(1).clientId,
        ),
    ]) {
      expect(call).toThrow(expect.objectContaining({ code: "internal" }));
    }
    for (const q of [mem, shared, asyncOnly]) q.close();
  });

  it("answers before returning, with the same results as the async methods", async () => {
    const { q, store, ids } = setup({ maxPerDevice: 2 });
    const sync = q.sync!;
    expect(sync.enqueueSync(envelope(1), [phone, laptop, phone], { online: on })).toEqual({
      ok: true,
    });
    expect(ids()).toEqual(["m1", "m1"]);
    expect(await store.count(phone)).toBe(1);
    expect(
      sync.checkDuplicateSync(deviceKey(userId("alice"), deviceId("a1")), envelope(1).clientId),
    ).toEqual({
      messageId: mid(1),
      conversation: envelope(1).conversation,
      seq: 1,
      ts: 0,
    });
    // The same client id with another message: the original record, nothing stored.
    const again = { ...envelope(2), clientId: envelope(1).clientId };
    expect(sync.enqueueSync(again, [phone])).toEqual({
      ok: false,
      code: "duplicate",
      record: await q.checkDuplicate(
        deviceKey(userId("alice"), deviceId("a1")),
        envelope(1).clientId,
      ),
    });
    sync.enqueueSync(envelope(3), [phone]);
    expect(sync.enqueueSync(envelope(4), [phone])).toEqual({
      ok: false,
      code: "recipient_queue_full",
      full: [phone],
    });
    expect(q.stats.refused).toBe(1);
    expect(sync.ackSync(phone, [mid(1), mid(3), mid(9)])).toBe(2);
    expect(await store.count(phone)).toBe(0);
    expect(sync.ackSync(laptop, [])).toBe(0);
    expect(await store.count(laptop)).toBe(1);
    q.close();
    expect(() => sync.enqueueSync(envelope(5), [phone])).toThrow(
      expect.objectContaining({ code: "closed" }),
    );
  });

  it("an `online` answer that throws is reported and the entry is still held for that device", async () => {
    const { q } = setup();
    const errors: string[] = [];
    q.on("callbackError", (_e, device, callback) => errors.push(`${device} ${callback}`));
    const others = Array.from({ length: 10 }, (_, i) => dev(`x${i}`));
    const online = (d: DeviceKey) => {
      if (d === laptop) throw new Error("directory down");
      return true;
    };
    expect(q.sync!.enqueueSync(envelope(1), [phone, laptop, ...others], { online })).toEqual({
      ok: true,
    });
    expect(await q.enqueue(envelope(2), [laptop, phone], { online })).toEqual({ ok: true });
    expect(errors).toEqual([`${laptop} online`, `${laptop} online`]);
    expect([phone, laptop, ...others].map((d) => q.pending(d))).toEqual([
      2,
      2,
      ...others.map(() => 1),
    ]);
    q.close();
  });

  it("a batched ack that starts at a lane's head removes those in one cut and finds the rest one by one", async () => {
    const { q, store, ids } = setup({ window: 2 });
    const sync = q.sync!;
    for (let n = 1; n <= 5; n++) sync.enqueueSync(envelope(n, "low"), [phone], { online: on });
    sync.enqueueSync(envelope(6, "high"), [phone], { online: on });
    expect(ids(phone)).toEqual(["m1", "m2"]);
    // m1, m2 at the head in order; m4 further in; m9 unknown; m1 again.
    expect(sync.ackSync(phone, [mid(1), mid(2), mid(4), mid(9), mid(1)])).toBe(3);
    expect(q.pending(phone)).toBe(3);
    // The window refilled in arrival order with what is left.
    expect(ids(phone)).toEqual(["m1", "m2", "m3", "m5"]);
    expect((await store.list(phone)).map((m) => m.envelope.id)).toEqual(["m3", "m5", "m6"]);
    // A later batch that is not at any head still finds its entries.
    expect(sync.ackSync(phone, [mid(6), mid(5)])).toBe(2);
    expect((await store.list(phone)).map((m) => m.envelope.id)).toEqual(["m3"]);
    expect(q.stats.delivered).toBe(5);
    expect(sync.ackSync(phone, [mid(3)])).toBe(1);
    expect(q.pending(phone)).toBe(0);
    expect(q.depth).toBe(0);
    q.close();
  });

  it("keeps no state for the devices of a refused synchronous enqueue", () => {
    const { q } = setup({ maxPerDevice: 1 });
    const sync = q.sync!;
    sync.enqueueSync(envelope(1), [phone]);
    const before = q.stats.devices;
    const others = ["a", "b", "c"].map((d) => dev(d));
    // Every device full: refused.
    sync.enqueueSync(envelope(4), others);
    expect(sync.enqueueSync(envelope(2), [...others, phone])).toMatchObject({
      ok: false,
      code: "recipient_queue_full",
    });
    expect(q.stats.devices).toBe(before + 3);
    for (const d of others) sync.ackSync(d, [mid(4)]);
    expect(q.stats.devices).toBe(before);
    // The same devices accepted later start clean.
    expect(sync.enqueueSync(envelope(3), others)).toEqual({ ok: true });
    expect(q.stats.devices).toBe(before + 3);
    q.close();
  });

  it("reports a throwing store as a store error, without retrying in real time", () => {
    const store = new MemoryQueueStore();
    store.appendSync = () => {
      throw new Error("boom");
    };
    const { q } = setup({ store, storeRetry: { retries: 3 } });
    const errors: string[] = [];
    q.on("storeError", (_e, op) => errors.push(op));
    expect(() => q.sync!.enqueueSync(envelope(1), [phone])).toThrow(
      expect.objectContaining({ code: "store_unavailable" }),
    );
    expect(errors).toEqual(["append"]);
    expect(q.depth).toBe(0);
  });
});

describe("DeliveryQueue: connect and disconnect", () => {
  it("an offline device gets its backlog on reconnect: a window's worth at once, in order, the rest as it acks; then backoff resumes", async () => {
    const { clock, q, sent } = setup({ window: 2, retry: { retries: 5 } });
    for (const [n, p] of [
      [1, "normal"],
      [2, "high"],
      [3, "low"],
      [4, "normal"],
      [5, "high"],
    ] as const) {
      await q.enqueue(envelope(n, p), [phone], { online: off });
    }
    clock.advance(5000);
    expect(sent).toEqual([]);
    q.deviceConnected(phone);
    const log = () => sent.map((s) => `${s.id}#${s.attempt}@${s.t}`);
    expect(log()).toEqual(["m1#1@5000", "m2#1@5000"]);
    await q.ack(phone, [mid(1)]);
    await q.ack(phone, [mid(2)]);
    expect(log().slice(2)).toEqual(["m3#1@5000", "m4#1@5000"]);
    const watch: string[] = [];
    q.on("probe", () => watch.push(`probe@${clock.now()}`));
    q.on("unresponsive", () => watch.push(`unresponsive@${clock.now()}`));
    clock.advance(1000);
    expect(sent).toHaveLength(4); // no second copy on the same connection: a probe
    expect(watch).toEqual(["probe@6000"]);
    q.deviceDisconnected(phone);
    clock.advance(1_000_000);
    expect(sent).toHaveLength(4); // nothing while offline
    q.deviceConnected(phone);
    const back = 1_006_000;
    // At once on reconnect, attempt counts carried on; m5 waits for room in the window.
    expect(log().slice(4)).toEqual([`m3#2@${back}`, `m4#2@${back}`]);
    await q.ack(phone, [mid(3)]);
    expect(log().slice(6)).toEqual([`m5#1@${back}`]);
    // m5's ack deadline (1000 ms, first attempt) comes first; m4's (attempt 2: 2000 ms)
    // falls in the probe's grace; the connection is unresponsive 10 s after the probe.
    clock.advance(1000);
    expect(watch.slice(1)).toEqual([`probe@${back + 1000}`]);
    clock.advance(9999);
    expect(watch.slice(2)).toEqual([]);
    clock.advance(1);
    expect(watch.slice(2)).toEqual([`unresponsive@${back + 11_000}`]);
    expect(sent).toHaveLength(7);
  });

  it("a reconnect flush never lets a later entry overtake a lost earlier one (window 1)", async () => {
    const { clock, q, sent } = setup({ window: 1, retry: { retries: 5 } }, { reconnect: true });
    for (let n = 1; n <= 4; n++) await q.enqueue(envelope(n), [phone], { online: off });
    q.deviceConnected(phone);
    // The link loses m1's transmission: nothing behind it goes out until m1 is acked.
    expect(sent.map((s) => s.id)).toEqual(["m1"]);
    clock.advance(1000);
    expect(sent.map((s) => s.id)).toEqual(["m1", "m1"]);
    for (let n = 1; n <= 4; n++) await q.ack(phone, [mid(n)]);
    expect(sent.map((s) => s.id)).toEqual(["m1", "m1", "m2", "m3", "m4"]);
  });

  it("the online predicate of enqueue connects and disconnects devices", async () => {
    const { q, ids } = setup();
    await q.enqueue(envelope(1), [phone], { online: off });
    expect(q.isOnline(phone)).toBe(false);
    await q.enqueue(envelope(2), [phone], { online: on });
    expect(q.isOnline(phone)).toBe(true);
    expect(ids()).toEqual(["m1", "m2"]); // the connect sent m1 first
    await q.enqueue(envelope(3), [phone]);
    expect(ids()).toEqual(["m1", "m2", "m3"]);
    await q.enqueue(envelope(4), [phone], { online: off });
    expect(q.isOnline(phone)).toBe(false);
    expect(ids()).toHaveLength(3);
  });
});

describe("DeliveryQueue: expiry", () => {
  it("an offline device's entries fail with ttl_expired, exactly once each", async () => {
    const { clock, q, failed, store } = setup({ ttlMs: 10_000 });
    await q.enqueue(envelope(1), [phone, laptop], { online: off });
    clock.advance(5000);
    await q.enqueue(envelope(2), [phone], { online: off });
    clock.advance(4999);
    expect(failed).toEqual([]);
    clock.advance(1);
    expect(failed.map((f) => `${f.id}:${f.device}:${f.reason}@${f.t}`)).toEqual([
      `m1:${phone}:ttl_expired@10000`,
      `m1:${laptop}:ttl_expired@10000`,
    ]);
    clock.advance(5000);
    expect(failed.map((f) => f.id)).toEqual(["m1", "m1", "m2"]);
    clock.advance(100_000_000);
    expect(failed).toHaveLength(3);
    expect(await store.devices()).toEqual([]);
    expect(q.stats).toMatchObject({ expired: 3, failed: 3, depth: 0, devices: 0 });
  });

  it("defaults the TTL to 30 days", async () => {
    const { clock, q, failed } = setup();
    await q.enqueue(envelope(1), [phone], { online: off });
    clock.advance(30 * 86_400_000 - 1);
    expect(failed).toEqual([]);
    clock.advance(1);
    expect(failed.map((f) => f.reason)).toEqual(["ttl_expired"]);
  });

  it("the TTL also ends an entry that is being retried while connected", async () => {
    const { clock, q, failed, sent } = setup(
      { ttlMs: 2500, retry: { retries: 10 } },
      { reconnect: true },
    );
    await q.enqueue(envelope(1), [phone], { online: on });
    clock.advance(10_000);
    expect(sent.map((s) => s.t)).toEqual([0, 1000]);
    expect(failed.map((f) => `${f.reason}@${f.t}`)).toEqual(["ttl_expired@2500"]);
  });
});

describe("DeliveryQueue: dedupe", () => {
  it("remembers (sender, client id) for the window and a retried send is delivered once", async () => {
    const { clock, q, ids } = setup({ dedupeWindowMs: 60_000 });
    const send = async (e: Envelope) => {
      const dup = await q.checkDuplicate(sentBy(e), e.clientId);
      if (dup) return dup;
      await q.enqueue(e, [phone], { online: on });
      return undefined;
    };
    expect(await send(envelope(1))).toBeUndefined();
    const retried = { ...envelope(1), id: messageId("m-other"), seq: 99 };
    expect(await send(retried)).toEqual({
      messageId: "m1",
      conversation: "dm:alice:bob",
      seq: 1,
      ts: 0,
    });
    expect(ids()).toEqual(["m1"]);
    expect(
      await q.checkDuplicate(deviceKey(userId("mallory"), deviceId("a1")), envelope(1).clientId),
    ).toBeUndefined();
    clock.advance(60_000);
    expect(
      await q.checkDuplicate(deviceKey(userId("alice"), deviceId("a1")), envelope(1).clientId),
    ).toBeUndefined();
  });

  it("remember keeps the first record; enqueue can skip remembering", async () => {
    const { q } = setup();
    const a = envelope(1);
    const rec = { messageId: a.id, conversation: a.conversation, seq: 1, ts: 0 };
    expect(await q.remember(sentBy(a), a.clientId, rec)).toEqual(rec);
    expect(await q.remember(sentBy(a), a.clientId, { ...rec, seq: 2 })).toEqual(rec);
    const b = envelope(2);
    await q.enqueue(b, [phone], { online: off, remember: false });
    expect(await q.checkDuplicate(sentBy(b), b.clientId)).toBeUndefined();
  });
});

describe("DeliveryQueue: bounds", () => {
  it("refuses over the per-device cap with recipient_queue_full, storing nothing", async () => {
    const { q, store, ids } = setup({ maxPerDevice: 2 });
    await q.enqueue(envelope(1), [phone], { online: on });
    await q.enqueue(envelope(2), [phone], { online: on });
    const refused: string[] = [];
    q.on("refused", (e) => refused.push(e.id));
    const r = await q.enqueue(envelope(3), [phone], { online: on });
    expect(r).toEqual({ ok: false, code: "recipient_queue_full", full: [phone] });
    expect(refused).toEqual(["m3"]);
    expect(ids()).toEqual(["m1", "m2"]);
    expect(
      await q.checkDuplicate(deviceKey(userId("alice"), deviceId("a1")), envelope(3).clientId),
    ).toBeUndefined();
    // With another device that has room, the full one is left out and the send is accepted.
    expect(await q.enqueue(envelope(3), [laptop, phone], { online: on })).toEqual({
      ok: true,
      skipped: [phone],
    });
    expect(q.pending(laptop)).toBe(1);
    expect(await store.count(phone)).toBe(2);
    await q.ack(phone, [mid(1)]);
    expect(await q.enqueue(envelope(4), [laptop, phone], { online: on })).toEqual({ ok: true });
    expect(q.stats.refused).toBe(1);
  });

  it("counts a device listed twice once", async () => {
    const { q, ids } = setup({ maxPerDevice: 1 });
    expect(await q.enqueue(envelope(1), [phone, phone], { online: on })).toEqual({ ok: true });
    expect(ids()).toEqual(["m1"]);
  });
});

describe("DeliveryQueue: lanes and load", () => {
  it("degraded: low is deferred while high goes first; delivered once load falls, none lost", async () => {
    const { q, load, ids } = setup({ window: 100 });
    const deferred: string[] = [];
    q.on("deferred", (_d, e) => deferred.push(e.id));
    load.setDegraded(true);
    const plan = [
      [1, "low"],
      [2, "normal"],
      [3, "high"],
      [4, "low"],
      [5, "normal"],
      [6, "high"],
    ] as const;
    for (const [n, p] of plan) await q.enqueue(laned(n, p), [phone], { online: off });
    q.deviceConnected(phone);
    expect(ids()).toEqual(["m3", "m6", "m2", "m5"]);
    expect(deferred).toEqual(["m1", "m4"]);
    await q.enqueue(laned(7, "low"), [phone]);
    await q.enqueue(laned(8, "high"), [phone]);
    expect(ids()).toEqual(["m3", "m6", "m2", "m5", "m8"]);
    expect(q.stats.deferred).toBe(3);
    load.setDegraded(false);
    expect(ids()).toEqual(["m3", "m6", "m2", "m5", "m8", "m1", "m4", "m7"]);
    await q.ack(phone, [1, 2, 3, 4, 5, 6, 7, 8].map(mid));
    expect(q.depth).toBe(0);
  });

  it('order "priority" sends high, normal, low even when not degraded, FIFO within each', async () => {
    const { q, ids } = setup({ order: "priority" });
    for (const [n, p] of [
      [1, "low"],
      [2, "normal"],
      [3, "high"],
      [4, "low"],
      [5, "high"],
    ] as const) {
      await q.enqueue(envelope(n, p), [phone], { online: off });
    }
    q.deviceConnected(phone);
    expect(ids()).toEqual(["m3", "m5", "m2", "m1", "m4"]);
  });

  it("normal mode keeps plain arrival order across lanes", async () => {
    const { q, ids } = setup();
    for (const [n, p] of [
      [1, "low"],
      [2, "high"],
      [3, "normal"],
    ] as const) {
      await q.enqueue(envelope(n, p), [phone], { online: off });
    }
    q.deviceConnected(phone);
    expect(ids()).toEqual(["m1", "m2", "m3"]);
  });

  it("a measured load (queue depth) defers low, and a re-sample releases it when depth falls", async () => {
    const clock = new ManualClock();
    let q!: DeliveryQueue;
    const load = new LoadSignal({
      clock,
      histogram: false,
      depth: () => q.depth,
      depthThreshold: 3,
      recoverRatio: 1,
      sampleIntervalMs: 100,
    });
    const sent: string[] = [];
    q = new DeliveryQueue({
      clock,
      load,
      storeRetry: false,
      transmit: (_d, e) => sent.push(e.id),
    });
    for (const n of [1, 2, 3]) await q.enqueue(envelope(n, "high"), [laptop], { online: off });
    clock.advance(100);
    await q.enqueue(envelope(4, "low"), [phone], { online: on }); // samples depth 3: degraded
    expect(load.degraded).toBe(true);
    expect(sent).toEqual([]);
    await q.ack(laptop, [mid(1), mid(2), mid(3)]);
    clock.advance(99);
    expect(sent).toEqual([]);
    clock.advance(1); // the recheck timer samples depth 1 and releases m4
    expect(sent).toEqual(["m4"]);
    expect(load.degraded).toBe(false);
    await q.ack(phone, [mid(4)]);
    q.close();
    expect(clock.pending).toBe(0);
  });

  it("after degraded mode, deferred low entries go out one per freed slot of releaseBacklog, in turn; FIFO resumes once all are out", async () => {
    const tablet = dev("tablet");
    const { q, load, ids } = setup({ window: 1, releaseBacklog: 2 });
    load.setDegraded(true);
    await q.enqueue(laned(1, "low"), [phone], { online: on });
    await q.enqueue(laned(2, "low"), [laptop], { online: on });
    await q.enqueue(laned(3, "low"), [tablet], { online: on });
    await q.enqueue(laned(4, "high"), [phone]);
    expect(ids()).toEqual(["m4"]);
    load.setDegraded(false);
    // Backlog 1 (m4): one release fits. The phone's window is taken, so the laptop's goes.
    expect(ids()).toEqual(["m4", "m2"]);
    expect(q.degraded).toBe(true);
    expect(q.backlog).toBe(2);
    // Still degraded: a high entry overtakes the deferred low one at the same device.
    await q.enqueue(laned(5, "high"), [tablet]);
    expect(ids()).toEqual(["m4", "m2", "m5"]);
    // The phone's slot frees, but the budget is spent: it waits its turn.
    await q.ack(phone, [mid(4)]);
    expect(ids()).toEqual(["m4", "m2", "m5"]);
    await q.ack(laptop, [mid(2)]);
    expect(ids()).toEqual(["m4", "m2", "m5", "m1"]);
    await q.ack(tablet, [mid(5)]);
    expect(ids()).toEqual(["m4", "m2", "m5", "m1", "m3"]);
    expect(q.degraded).toBe(false);
    expect(q.stats.deferred).toBe(3);
    // Normal mode again: plain arrival order across lanes.
    await q.enqueue(laned(6, "low"), [phone]);
    await q.enqueue(laned(7, "high"), [phone]);
    await q.ack(phone, [mid(1)]);
    expect(ids(phone)).toEqual(["m4", "m1", "m6"]);
    await q.ack(phone, [mid(6)]);
    expect(ids(phone)).toEqual(["m4", "m1", "m6", "m7"]);
    await q.ack(phone, [mid(7)]);
    await q.ack(tablet, [mid(3)]);
    expect(q.depth).toBe(0);
    expect(q.stats.deferred).toBe(3);
  });

  it("degraded mode lasts until every deferred entry is out: new low entries queue behind them", async () => {
    const { q, load, ids } = setup({ window: 1, releaseBacklog: 1 });
    load.setDegraded(true);
    await q.enqueue(envelope(1, "low"), [phone], { online: on });
    await q.enqueue(envelope(2, "low"), [laptop], { online: on });
    load.setDegraded(false);
    expect(ids()).toEqual(["m1"]);
    // A low entry for the phone arrives while the laptop's m2 still waits: it waits too,
    // and behind m2 even once the phone's window frees.
    await q.enqueue(envelope(3, "low"), [phone]);
    await q.ack(phone, [mid(1)]);
    expect(ids()).toEqual(["m1", "m2"]);
    expect(q.degraded).toBe(true);
    await q.ack(laptop, [mid(2)]);
    expect(ids()).toEqual(["m1", "m2", "m3"]);
    expect(q.degraded).toBe(false);
    expect(q.stats.deferred).toBe(3);
  });

  it("a device that stops acking does not keep the queue in degraded order once load falls", async () => {
    const { q, load, ids } = setup({ window: 1, releaseBacklog: 10 });
    await q.enqueue(envelope(1, "high"), [phone], { online: on }); // never acked
    load.setDegraded(true);
    await q.enqueue(envelope(2, "low"), [phone]);
    await q.enqueue(envelope(3, "low"), [laptop], { online: on });
    expect(ids()).toEqual(["m1"]);
    load.setDegraded(false);
    expect(ids()).toEqual(["m1", "m3"]);
    await q.ack(laptop, [mid(3)]);
    // The phone's m2 waits for its own window, not for the release turn: nothing is deferred.
    expect(q.degraded).toBe(false);
    expect(q.stats.deferred).toBe(2);
    // Back to plain FIFO for everyone, the phone included once it acks.
    await q.enqueue(envelope(4, "low"), [laptop]);
    await q.enqueue(envelope(5, "high"), [laptop]);
    await q.ack(laptop, [mid(4)]);
    expect(ids(laptop)).toEqual(["m3", "m4", "m5"]);
    await q.ack(phone, [mid(1)]);
    expect(ids(phone)).toEqual(["m1", "m2"]);
    expect(q.stats.deferred).toBe(2);
  });

  it("a retry of a stuck device while another waits for the release does not bring degraded order back", async () => {
    const { q, load, clock, ids } = setup({
      window: 2,
      releaseBacklog: 3,
      retry: { retries: 50, minTimeout: 1000, factor: 1, randomize: false },
    });
    await q.enqueue(envelope(1, "high"), [phone], { online: on }); // the phone never acks
    await q.enqueue(envelope(11, "high"), [phone]);
    await q.enqueue(envelope(9, "high"), [laptop], { online: on });
    load.setDegraded(true);
    await q.enqueue(envelope(2, "low"), [phone]);
    await q.enqueue(envelope(3, "low"), [laptop]);
    await q.enqueue(envelope(4, "low"), [laptop]);
    load.setDegraded(false);
    expect(q.degraded).toBe(true); // the laptop's m3, m4 wait for the release turn
    clock.advance(1000); // the phone's retry pumps it while the laptop still waits
    for (const n of [9, 3, 4]) await q.ack(laptop, [mid(n)]);
    expect([...new Set(ids(laptop))]).toEqual(["m9", "m3", "m4"]);
    expect(q.degraded).toBe(false);
    // Plain FIFO for the laptop: its low m5 is not overtaken by the high m6 behind it.
    await q.enqueue(envelope(7, "high"), [laptop]);
    await q.enqueue(envelope(5, "low"), [laptop]);
    await q.enqueue(envelope(6, "high"), [laptop]);
    expect([...new Set(ids(laptop))]).toEqual(["m9", "m3", "m4", "m7", "m5"]);
  });

  it("a device that stops acking does not eat the release budget of others' deferred entries", async () => {
    const { q, load, clock, ids } = setup({
      window: 2,
      releaseBacklog: 5,
      maxPerDevice: 100,
      retry: { retries: 20, minTimeout: 60_000, factor: 1, randomize: false },
    });
    await q.enqueue(envelope(1, "high"), [phone], { online: on }); // the phone stops acking
    await q.enqueue(envelope(2, "high"), [phone]);
    await q.enqueue(envelope(3, "high"), [laptop], { online: on });
    load.setDegraded(true);
    for (let n = 10; n < 20; n++) await q.enqueue(envelope(n, "low"), [phone]);
    await q.enqueue(envelope(30, "low"), [laptop]);
    await q.enqueue(envelope(31, "low"), [laptop]);
    load.setDegraded(false);
    const acked = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const fresh = [...new Set(ids(laptop))].filter((x) => !acked.has(x));
      for (const x of fresh) acked.add(x);
      await q.ack(laptop, fresh as MessageId[]);
    }
    clock.advance(1000); // well before the phone's first retry (60 s)
    expect([...new Set(ids(laptop))]).toEqual(["m3", "m30", "m31"]);
  });

  it("releaseBacklog defaults to the load signal's normal depth; a disconnect frees its share", async () => {
    const clock = new ManualClock();
    let q!: DeliveryQueue;
    const load = new LoadSignal({
      clock,
      histogram: false,
      depth: () => q.backlog,
      depthThreshold: 4,
      recoverRatio: 0.5,
    });
    const sent: string[] = [];
    q = new DeliveryQueue({ clock, load, window: 1, transmit: (_d, e) => sent.push(e.id) });
    const devices = [0, 1, 2, 3, 4, 5].map((i) => dev(`d${i}`));
    load.setDegraded(true);
    for (const [i, d] of devices.entries()) {
      await q.enqueue(envelope(i + 1, "low"), [d], { online: on });
    }
    expect(sent).toEqual([]);
    load.setDegraded(undefined); // measured: normal, so release up to backlog 2 (4 x 0.5)
    expect(sent).toEqual(["m1", "m2"]);
    await q.ack(devices[0]!, [mid(1)]);
    expect(sent).toEqual(["m1", "m2", "m3"]);
    q.deviceDisconnected(devices[1]!); // m2 leaves the backlog
    expect(sent).toEqual(["m1", "m2", "m3", "m4"]);
    expect(load.degraded).toBe(false);
    expect(q.degraded).toBe(true);
    q.close();
  });

  it("shouldShed sheds only volatile frames, only when degraded", () => {
    const { q, load } = setup();
    expect(q.shouldShed(true)).toBe(false);
    load.setDegraded(true);
    expect(q.shouldShed(true)).toBe(true);
    expect(q.shouldShed(false)).toBe(false);
  });
});

describe("DeliveryQueue: store", () => {
  it("recover() rebuilds the schedule from a durable store after a restart: nothing lost", async () => {
    const store = new MemoryQueueStore();
    const a = setup({ store, ttlMs: 50_000 });
    await a.q.enqueue(envelope(1), [phone, laptop], { online: on });
    await a.q.enqueue(envelope(2, "high"), [phone], { online: off });
    await a.q.enqueue(envelope(3, "low"), [phone, laptop], { online: off });
    await a.q.ack(laptop, [mid(1)]);
    a.clock.advance(10_000);
    a.q.close(); // the node dies

    const b = setup({ store, ttlMs: 50_000 });
    b.clock.advanceTo(10_000);
    expect(await b.q.recover({ online: (d) => d === laptop })).toBe(4);
    expect(await b.q.recover()).toBe(0); // idempotent
    expect(b.ids(laptop)).toEqual(["m3"]);
    b.q.deviceConnected(phone);
    expect(b.ids(phone)).toEqual(["m1", "m2", "m3"]);
    await b.q.ack(phone, [mid(1), mid(2)]);
    b.clock.advanceTo(49_999);
    expect(b.failed).toEqual([]);
    b.clock.advanceTo(50_000); // the original expiry still holds
    expect(b.failed.map((f) => `${f.id}:${f.device}`).sort()).toEqual([
      `m3:${laptop}`,
      `m3:${phone}`,
    ]);
    expect(await store.devices()).toEqual([]);
  });

  it("retries a transient store failure with p-retry, in real time", async () => {
    let failures = 2;
    const flaky = new (class extends MemoryQueueStore {
      override async append(...args: Parameters<QueueStore["append"]>) {
        if (failures-- > 0) throw new Error("ECONNRESET");
        return super.append(...args);
      }
    })();
    const retriedOk = setup({ store: flaky, storeRetry: { retries: 3, minTimeout: 0 } });
    expect(await retriedOk.q.enqueue(envelope(1), [phone], { online: on })).toEqual({ ok: true });
    expect(retriedOk.ids()).toEqual(["m1"]);

    failures = 1;
    const noRetry = setup({ store: flaky, storeRetry: false });
    const errors: string[] = [];
    noRetry.q.on("storeError", (_e, op) => errors.push(op));
    const err = await noRetry.q.enqueue(envelope(2), [phone], { online: on }).catch((e) => e);
    expect(isRelayError(err, "store_unavailable")).toBe(true);
    expect(errors).toEqual(["append"]);
    expect(noRetry.q.depth).toBe(0);
  });

  it("does not retry a store error with a definite code", async () => {
    let calls = 0;
    const store = new (class extends MemoryQueueStore {
      override async append(): Promise<never> {
        calls++;
        throw new RelayError("internal", "bug");
      }
    })();
    const { q } = setup({ store, storeRetry: { retries: 3, minTimeout: 0 } });
    const err = await q.enqueue(envelope(1), [phone]).catch((e) => e);
    expect(isRelayError(err, "internal")).toBe(true);
    expect(calls).toBe(1);
  });
});

describe("DeliveryQueue: options and events", () => {
  it("rejects bad options with invalid_option", () => {
    const transmit = () => {};
    const bad: Array<[Partial<DeliveryQueueOptions>, RegExp]> = [
      [{ window: 0 }, /Expected `window` to be .* >= 1, got `0`/],
      [{ maxPerDevice: 1.5 }, /maxPerDevice/],
      [{ ttlMs: -1 }, /ttlMs/],
      [{ retry: { retries: -1 } }, /retry\.retries/],
      [{ lanes: { high: { retry: { factor: -2 } } } }, /lanes\.high\.retry\.factor/],
      [{ releaseBacklog: 0 }, /releaseBacklog/],
    ];
    for (const [o, msg] of bad) {
      expect(() => new DeliveryQueue({ transmit, ...o })).toThrow(msg);
    }
    expect(() => new DeliveryQueue({} as DeliveryQueueOptions)).toThrow(
      expect.objectContaining({ code: "invalid_option", path: "transmit" }),
    );
  });

  it("emits the per-entry events to listeners however they were added, and only while they listen", async () => {
    const { q } = setup();
    const heard: string[] = [];
    const onDelivered = (_d: DeviceKey, id: MessageId) => heard.push(`delivered ${id}`);
    await q.enqueue(envelope(1), [phone], { online: on }); // nobody listens yet
    q.addListener("enqueued", (_d, e) => heard.push(`enqueued ${e.id}`));
    await q.enqueue(envelope(2), [phone]);
    q.removeAllListeners("enqueued");
    q.once("transmitted", (_d, e) => heard.push(`transmitted ${e.id}`));
    await q.enqueue(envelope(3), [phone]);
    await q.enqueue(envelope(4), [phone]);
    q.on("delivered", onDelivered);
    await q.ack(phone, [mid(1), mid(2)]);
    q.off("delivered", onDelivered);
    await q.ack(phone, [mid(3)]);
    q.on("delivered", onDelivered);
    q.on("delivered", onDelivered);
    q.removeListener("delivered", onDelivered, undefined, false);
    await q.ack(phone, [mid(4)]);
    expect(heard).toEqual(["enqueued m2", "transmitted m3", "delivered m1", "delivered m2"]);
    expect(q.listenerCount("delivered")).toBe(0);
  });

  it("emits events and keeps counts for metrics", async () => {
    const { clock, q } = setup({ retry: { retries: 1 }, ttlMs: 100_000 }, { reconnect: true });
    const seen: string[] = [];
    for (const ev of [
      "enqueued",
      "transmitted",
      "retried",
      "delivered",
      "expired",
      "failed",
    ] as const) {
      q.on(ev, () => seen.push(ev));
    }
    await q.enqueue(envelope(1), [phone], { online: on });
    await q.ack(phone, [mid(1)]);
    await q.enqueue(envelope(2), [phone], { online: on });
    clock.advance(3000);
    await q.enqueue(envelope(3), [laptop], { online: off });
    clock.advance(100_000);
    expect(seen).toEqual([
      "enqueued",
      "transmitted",
      "delivered",
      "enqueued",
      "transmitted",
      "retried",
      "transmitted",
      "failed",
      "enqueued",
      "expired",
      "failed",
    ]);
    expect(q.stats).toEqual({
      enqueued: 3,
      transmitted: 3,
      retried: 1,
      deferred: 0,
      delivered: 1,
      expired: 1,
      exhausted: 1,
      failed: 2,
      refused: 0,
      depth: 0,
      devices: 1,
      backlog: 0,
    });
  });

  it("close stops its timers and refuses new work", async () => {
    const { clock, q } = setup();
    await q.enqueue(envelope(1), [phone], { online: on });
    q.close();
    expect(clock.pending).toBe(0);
    await expect(q.enqueue(envelope(2), [phone])).rejects.toMatchObject({ code: "closed" });
  });
});

describe("DeliveryQueue: reconnect while degraded", () => {
  it("a second connect of an online device while degraded does not stall its low lane", async () => {
    const clock = new ManualClock();
    const load = new LoadSignal({ clock, histogram: false });
    const sent: string[] = [];
    const phone = dev("phone");
    const q = new DeliveryQueue({
      clock,
      load,
      random: seededRandom(1),
      storeRetry: false,
      window: 4,
      releaseBacklog: 2,
      transmit: (_d, e) => sent.push(e.id),
    });
    await q.enqueue(envelope(1, "low"), [phone], { online: on });
    await q.enqueue(envelope(2, "low"), [phone], { online: on });
    expect(sent).toEqual(["m1", "m2"]); // in flight
    load.setDegraded(true);
    await q.enqueue(envelope(3, "low"), [phone], { online: on });
    await q.enqueue(envelope(4, "low"), [phone], { online: on });
    expect(sent).toEqual(["m1", "m2"]); // m3, m4 deferred
    // A second session of the same device registers before the old one closes (the router
    // calls deviceConnected again): in-flight entries are reset and must be resent.
    q.deviceConnected(phone);
    load.setDegraded(false);
    // Let any amount of time pass: retries, rechecks...
    // The device acks what reaches its new session (the old one lost m1, m2); let time pass (retries, rechecks).
    for (let i = 0; i < 20; i++) {
      clock.advance(60_000);
      await q.ack(
        phone,
        [...new Set(sent.slice(2))].map((id) => id as never),
      );
    }
    // Expected: m1..m4 all (re)transmitted after the reconnect, and degraded mode over.
    expect([...new Set(sent.slice(2))].sort()).toEqual(["m1", "m2", "m3", "m4"]);
    expect(q.degraded).toBe(false);
  });
});
