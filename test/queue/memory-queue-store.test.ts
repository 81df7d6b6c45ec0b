import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DeviceKey,
  deviceId,
  deviceKey,
  type GroupId,
  groupId,
  type MessageId,
  messageId,
  userId,
} from "../../src/core/index.js";
import {
  type AppendResult,
  isSyncQueueStore,
  MemoryQueueStore,
  type QueuedMessage,
  sentRecordOf,
} from "../../src/queue/index.js";
import { queueStoreConformance } from "../../src/testing/conformance/queue-store.js";
import { asyncStore, dev, envelope } from "./helpers.js";

describe("MemoryQueueStore", () => {
  for (const c of queueStoreConformance({ create: async () => new MemoryQueueStore() })) {
    it(c.name, c.run);
  }
});

/** Message `m<n>`, to bob or (given a group id) to a group. */
const msg = (n: number, group?: GroupId): QueuedMessage => ({
  envelope: group === undefined ? envelope(n) : { ...envelope(n), to: { group } },
  enqueuedAt: 0,
  expiresAt: 1e9,
});
const ids = (list: readonly QueuedMessage[]) => list.map((m) => m.envelope.id);
const mid = (n: number): MessageId => messageId(`m${n}`);

describe("MemoryQueueStore: a device with many entries", () => {
  it("keeps order, idempotency, the cap and removal by id as it grows past an array and drains back", async () => {
    const s = new MemoryQueueStore();
    const phone = dev("phone");
    for (let n = 1; n <= 40; n++)
      expect(s.appendSync(msg(n), [phone], 40)).toEqual({ ok: true, added: 1 });
    expect(s.appendSync(msg(7), [phone], 40)).toEqual({ ok: true, added: 0 });
    expect(s.appendSync(msg(41), [phone], 40)).toEqual({ ok: false, full: [phone] });
    expect(await s.count(phone)).toBe(40);
    expect(s.removeSync(phone, [mid(40), mid(3), mid(99), mid(3)])).toBe(2);
    const rest = [...Array(39).keys()].map((i) => mid(i + 1)).filter((id) => id !== mid(3));
    expect(ids(await s.list(phone))).toEqual(rest);
    expect(s.removeSync(phone, [...rest].reverse())).toBe(38);
    expect(await s.count(phone)).toBe(0);
    expect(await s.devices()).toEqual([]);
    // Small again: the same behaviour.
    for (const n of [50, 51, 52]) s.appendSync(msg(n), [phone], 10);
    expect(s.appendSync(msg(51), [phone], 1)).toEqual({ ok: true, added: 0 });
    expect(s.removeSync(phone, [mid(51)])).toBe(1);
    expect(ids(await s.list(phone))).toEqual([mid(50), mid(52)]);
    expect(s.size).toBe(2);
  });

  it("appends to several devices at once, all or nothing", async () => {
    const s = new MemoryQueueStore();
    const [a, b] = [dev("a"), dev("b")];
    for (let n = 1; n <= 20; n++) s.appendSync(msg(n), [a], 100);
    expect(s.appendSync(msg(21), [a, b], 20)).toEqual({ ok: false, full: [a] });
    expect(await s.count(b)).toBe(0);
    expect(s.appendSync(msg(21), [a, b], 21)).toEqual({ ok: true, added: 2 });
    expect(s.appendSync(msg(21), [a, b], 21)).toEqual({ ok: true, added: 0 });
    expect(ids(await s.list(b))).toEqual([mid(21)]);
    expect((await s.list(a)).length).toBe(21);
  });
});

describe("MemoryQueueStore: synchronous methods", () => {
  it("is a SyncQueueStore; a store with only the async methods is not", () => {
    const s = new MemoryQueueStore();
    expect(isSyncQueueStore(s)).toBe(true);
    expect(isSyncQueueStore(asyncStore(s))).toBe(false);
  });

  it("getSentSync and putSentSync answer as getSent and putSent do", async () => {
    const s = new MemoryQueueStore();
    const aliceA1 = deviceKey(userId("alice"), deviceId("a1"));
    const { clientId } = envelope(1);
    const first = sentRecordOf(envelope(1));
    expect(s.getSentSync(aliceA1, clientId, 0)).toBeUndefined();
    expect(s.putSentSync(aliceA1, clientId, first, 100, 0)).toBe(first);
    expect(s.putSentSync(aliceA1, clientId, sentRecordOf(envelope(2)), 100, 50)).toBe(first);
    expect(s.getSentSync(aliceA1, clientId, 99)).toBe(first);
    expect(await s.getSent(aliceA1, clientId, 99)).toBe(first);
    expect(s.getSentSync(aliceA1, clientId, 100)).toBeUndefined();
    expect(await s.getSent(aliceA1, clientId, 100)).toBeUndefined();
  });
});

describe("MemoryQueueStore against a model", () => {
  it("appends (devices listed twice, messages appended again), removals and caps match a plain list per device", async () => {
    const devices = ["a", "b", "c", "d"].map((d) => dev(d));
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("append" as const),
        n: fc.integer({ min: 1, max: 30 }),
        to: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 }),
        max: fc.integer({ min: 1, max: 24 }),
      }),
      fc.record({
        kind: fc.constant("remove" as const),
        d: fc.integer({ min: 0, max: 3 }),
        ns: fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 5 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 120 }), async (ops) => {
        const s = new MemoryQueueStore();
        const model = new Map<string, number[]>(devices.map((d) => [d, []]));
        for (const o of ops) {
          if (o.kind === "append") {
            const to = o.to.map((i) => devices[i]!);
            const distinct = [...new Set(to)];
            const fresh = distinct.filter((d) => !model.get(d)!.includes(o.n));
            const full = to.filter(
              (d) => !model.get(d)!.includes(o.n) && model.get(d)!.length + 1 > o.max,
            );
            // `fresh` is a promise that no device holds it: given whenever that is true.
            const minted = [...model.values()].every((list) => !list.includes(o.n));
            const r = s.appendSync(msg(o.n), to, o.max, undefined, minted);
            if (full.length > 0) {
              expect(r).toEqual({ ok: false, full });
            } else {
              expect(r).toEqual({ ok: true, added: fresh.length });
              for (const d of fresh) model.get(d)!.push(o.n);
            }
          } else {
            const d = devices[o.d]!;
            const list = model.get(d)!;
            let removed = 0;
            for (const n of o.ns) {
              const i = list.indexOf(n);
              if (i >= 0) {
                list.splice(i, 1);
                removed++;
              }
            }
            expect(s.removeSync(d, o.ns.map(mid))).toBe(removed);
          }
          for (const d of devices) {
            expect(ids(await s.list(d))).toEqual(model.get(d)!.map(mid));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

/** A plain model of the store: each device's message numbers in append order. */
class Model {
  readonly #lists = new Map<DeviceKey, number[]>();

  of(d: DeviceKey): number[] {
    let list = this.#lists.get(d);
    if (!list) {
      list = [];
      this.#lists.set(d, list);
    }
    return list;
  }

  /** No device holds `n`: an append of it may say `fresh`. */
  minted(n: number): boolean {
    for (const list of this.#lists.values()) if (list.includes(n)) return false;
    return true;
  }

  /** What the store answers an append with, applied. */
  append(n: number, to: readonly DeviceKey[], max: number): AppendResult {
    const full = to.filter((d) => !this.of(d).includes(n) && this.of(d).length + 1 > max);
    if (full.length > 0) return { ok: false, full };
    const takers = [...new Set(to)].filter((d) => !this.of(d).includes(n));
    for (const d of takers) this.of(d).push(n);
    return { ok: true, added: takers.length };
  }

  remove(d: DeviceKey, ns: readonly number[]): number {
    const list = this.of(d);
    let removed = 0;
    for (const n of ns) {
      const i = list.indexOf(n);
      if (i >= 0) {
        list.splice(i, 1);
        removed++;
      }
    }
    return removed;
  }

  /** `list`, `count`, `devices` and `size` of `s` all agree with the model. */
  async check(s: MemoryQueueStore, devices: readonly DeviceKey[]): Promise<void> {
    let size = 0;
    for (const d of devices) {
      const want = this.of(d);
      expect(ids(await s.list(d))).toEqual(want.map(mid));
      expect(await s.count(d)).toBe(want.length);
      size += want.length;
    }
    const held = devices.filter((d) => this.of(d).length > 0);
    expect([...(await s.devices())].sort()).toEqual([...held].sort());
    expect(s.size).toBe(size);
  }
}

describe("MemoryQueueStore against a model: recurring recipient lists (rosters)", () => {
  const devices = Array.from({ length: 12 }, (_, i) => dev(`d${i}`));
  const ten = [...Array(10).keys()];
  /** Lists of more than 8 devices that recur, each built afresh per append. */
  const groups: readonly (readonly number[])[] = [
    ten,
    [...ten].reverse(), // the same devices, another order
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 0], // a device listed twice
    [2, 3, 4, 5, 6, 7, 8, 9, 10, 11], // overlapping the first
  ];
  /** The same lists frozen, one array each, passed again and again (a router's cached list). */
  const frozen = groups.map((g) => Object.freeze(g.map((i) => devices[i]!)));
  const n = fc.integer({ min: 1, max: 40 });
  const max = fc.oneof(fc.integer({ min: 1, max: 12 }), fc.constant(1000));
  /** Group chats: each message goes to the group's devices but the sender's. */
  const GROUPS = [groupId("g0"), groupId("g1")];
  const initialMembers: readonly (readonly number[])[] = [
    [...Array(11).keys()],
    [1, 3, 5, 7, 9, 11, 0, 2, 4, 6],
  ];
  const gi = fc.integer({ min: 0, max: GROUPS.length - 1 });
  const chatOp = fc.record({
    kind: fc.constant("chat" as const),
    group: gi,
    /**
     * The sending device: a member by index, or (index = member count) none of them; or (-1)
     * the group's last sender again (people send several messages in a row).
     */
    sender: fc.oneof({ weight: 2, arbitrary: fc.nat() }, fc.constant(-1)),
    /** The sender acks all its entries first (it read the chat before writing). */
    read: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)),
    n: fc.oneof(
      { weight: 1, arbitrary: n },
      { weight: 3, arbitrary: fc.integer({ min: 41, max: 400 }) },
    ),
    // Mostly room to spare: a long run of a group's messages, all on its roster.
    max: fc.oneof({ weight: 3, arbitrary: fc.constant(1000) }, max),
    fresh: fc.oneof(
      { weight: 4, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    /**
     * The recipient array: the router's frozen one for (group, sender), reused while the
     * members stay the same; that one even after they changed (`stale`); a new array; a new
     * array listing its first or last device again at its end.
     */
    list: fc.oneof(
      { weight: 8, arbitrary: fc.constant("frozen" as const) },
      { weight: 5, arbitrary: fc.constant("new" as const) },
      { weight: 1, arbitrary: fc.constant("stale" as const) },
      { weight: 1, arbitrary: fc.constantFrom("twiceFirst" as const, "twiceLast" as const) },
    ),
  });
  /** A device joins a group (put anywhere in its list), or one leaves. */
  const joinOp = fc.record({
    kind: fc.constant("join" as const),
    group: gi,
    device: fc.nat(),
    at: fc.nat(),
  });
  const leaveOp = fc.record({ kind: fc.constant("leave" as const), group: gi, at: fc.nat() });
  const listOp = fc.record({
    kind: fc.constant("group" as const),
    group: fc.integer({ min: 0, max: groups.length - 1 }),
    // Mostly new ids (the router's fan-out), sometimes one already held.
    n: fc.oneof(
      { weight: 1, arbitrary: n },
      { weight: 2, arbitrary: fc.integer({ min: 41, max: 400 }) },
    ),
    max,
    fresh: fc.oneof(
      { weight: 3, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    frozen: fc.boolean(),
  });
  const appendOp = fc.record({
    kind: fc.constant("append" as const),
    to: fc.array(fc.integer({ min: 0, max: 11 }), { minLength: 1, maxLength: 4 }),
    n,
    max,
    fresh: fc.boolean(),
  });
  const removeOp = fc.record({
    kind: fc.constant("remove" as const),
    d: fc.integer({ min: 0, max: 11 }),
    // The device's oldest `head` entries, then `extra` (held or not), maybe reversed.
    head: fc.integer({ min: 0, max: 4 }),
    extra: fc.array(n, { maxLength: 3 }),
    reversed: fc.boolean(),
  });
  const ackAllOp = fc.record({
    kind: fc.constant("ackAll" as const),
    // A few of each device's oldest entries, or all of them.
    head: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 4 }) }, fc.constant(1000)),
  });
  /** Every kind of operation, group chats among them. */
  const mixed = fc.oneof(
    { weight: 6, arbitrary: chatOp },
    { weight: 1, arbitrary: joinOp },
    { weight: 1, arbitrary: leaveOp },
    { weight: 5, arbitrary: listOp },
    { weight: 2, arbitrary: appendOp },
    { weight: 3, arbitrary: removeOp },
    { weight: 2, arbitrary: ackAllOp },
  );
  /**
   * Group chats and acks only: a group's devices stay on its roster long enough for its
   * steady state (all attached, senders' cursors moved on past their own messages).
   */
  const chats = fc.oneof(
    { weight: 30, arbitrary: chatOp },
    { weight: 1, arbitrary: joinOp },
    { weight: 1, arbitrary: leaveOp },
    { weight: 2, arbitrary: removeOp },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("ackAll" as const),
        head: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(1000)),
      }),
    },
  );
  const opsArb = fc.oneof(
    fc.array(mixed, { maxLength: 150, size: "max" }),
    fc.array(chats, { maxLength: 150, size: "max" }),
  );

  it("appends (fresh or not, refused by the cap, already held; group chats with rotating senders and changing members), acks in order or not and unknown ids match a plain list per device", async () => {
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        const s = new MemoryQueueStore();
        const model = new Model();
        const members = initialMembers.map((m) => [...m]);
        /** Bumped by each membership change of a group (the router's registry revision). */
        const version = GROUPS.map(() => 0);
        /** The router's frozen recipient arrays by (group, sending device). */
        const cached = new Map<string, { version: number; list: readonly DeviceKey[] }>();
        /** Each group's last sending device (a device index, or -1 for none of them). */
        const lastSender = GROUPS.map(() => -1);
        for (const o of ops) {
          if (o.kind === "chat") {
            const m = members[o.group]!;
            let at = o.sender === -1 ? m.indexOf(lastSender[o.group]!) : o.sender % (m.length + 1);
            if (at === -1) at = m.length;
            lastSender[o.group] = at < m.length ? m[at]! : -1;
            if (o.read && at < m.length) {
              const d = devices[m[at]!]!;
              const ns = model.of(d).slice();
              expect(s.removeSync(d, ns.map(mid))).toBe(model.remove(d, ns));
            }
            const key = `${o.group}:${at === m.length ? "none" : m[at]}`;
            const build = () => m.filter((_, i) => i !== at).map((i) => devices[i]!);
            let to: readonly DeviceKey[];
            const c = cached.get(key);
            if (o.list === "new") to = build();
            else if (o.list === "twiceFirst" || o.list === "twiceLast") {
              const list = build();
              to = [...list, list[o.list === "twiceFirst" ? 0 : list.length - 1]!];
            } else if (c && (o.list === "stale" || c.version === version[o.group])) to = c.list;
            else {
              to = Object.freeze(build());
              cached.set(key, { version: version[o.group]!, list: to });
            }
            const fresh = o.fresh && model.minted(o.n);
            const want = model.append(o.n, to, o.max);
            expect(s.appendSync(msg(o.n, GROUPS[o.group]), to, o.max, undefined, fresh)).toEqual(
              want,
            );
          } else if (o.kind === "join" || o.kind === "leave") {
            const m = members[o.group]!;
            if (o.kind === "join") {
              const out = devices.map((_, i) => i).filter((i) => !m.includes(i));
              if (out.length === 0) continue;
              m.splice(o.at % (m.length + 1), 0, out[o.device % out.length]!);
            } else {
              // Down to 9 members: 8 recipients, below a roster.
              if (m.length <= 9) continue;
              m.splice(o.at % m.length, 1);
            }
            version[o.group]!++;
          } else if (o.kind === "group" || o.kind === "append") {
            const to =
              o.kind === "group" && o.frozen
                ? frozen[o.group]!
                : (o.kind === "group" ? groups[o.group]! : o.to).map((i) => devices[i]!);
            // `fresh` is a promise that no device holds the id: given only when true.
            const fresh = o.fresh && model.minted(o.n);
            const want = model.append(o.n, to, o.max);
            expect(s.appendSync(msg(o.n), to, o.max, undefined, fresh)).toEqual(want);
          } else if (o.kind === "remove") {
            const d = devices[o.d]!;
            const ns = [...model.of(d).slice(0, o.head), ...o.extra];
            if (o.reversed) ns.reverse();
            const want = model.remove(d, ns);
            expect(s.removeSync(d, ns.map(mid))).toBe(want);
          } else {
            // Every device acks its oldest entries in one batch (a group's read receipts).
            for (const d of devices) {
              const ns = model.of(d).slice(0, o.head);
              expect(s.removeSync(d, ns.map(mid))).toBe(model.remove(d, ns));
            }
          }
          await model.check(s, devices);
        }
      }),
      { numRuns: 120 },
    );
    // 120 model runs take about 15 s on a loaded 2-core VM: more room than the 20 s default.
  }, 60_000);

  it("keeps a long log in order as its head is acked, cut and compacted", async () => {
    const s = new MemoryQueueStore();
    const model = new Model();
    const group = devices.slice(0, 10);
    const append = (n: number) =>
      expect(s.appendSync(msg(n), [...group], 1000, undefined, true)).toEqual(
        model.append(n, group, 1000),
      );
    const remove = (d: DeviceKey, ns: number[]) =>
      expect(s.removeSync(d, ns.map(mid))).toBe(model.remove(d, ns));
    for (let n = 1; n <= 200; n++) append(n);
    // Acked in batches of 20, device by device: the log's head goes once all have acked it.
    for (let from = 1; from <= 100; from += 20) {
      const batch = Array.from({ length: 20 }, (_, i) => from + i);
      for (const d of group) remove(d, batch);
      await model.check(s, group);
    }
    for (let n = 201; n <= 250; n++) append(n);
    remove(group[3]!, [150, 101, 999]); // out of order, and an unknown id
    remove(group[4]!, [999]); // unknown only
    for (const d of group) remove(d, model.of(d).slice(0, 60));
    await model.check(s, group);
    for (const d of group) remove(d, model.of(d).slice());
    append(251);
    await model.check(s, group);
  });

  it("keeps a group's devices right when their empty entries are dropped in bulk", async () => {
    const s = new MemoryQueueStore();
    const model = new Model();
    const group = devices.slice(0, 10);
    const others = Array.from({ length: 1500 }, (_, i) => dev(`o${i}`));
    const append = (n: number, to: readonly DeviceKey[], fresh = true) =>
      expect(s.appendSync(msg(n), [...to], 100, undefined, fresh)).toEqual(
        model.append(n, to, 100),
      );
    const remove = (d: DeviceKey, ns: number[]) =>
      expect(s.removeSync(d, ns.map(mid))).toBe(model.remove(d, ns));
    append(1, group);
    append(2, group);
    for (const d of group.slice(1)) remove(d, [1, 2]);
    // d1 leaves the roster with nothing (an append of its own, acked), d0 with entries.
    append(3, [group[1]!]);
    remove(group[1]!, [3]);
    append(4, [group[0]!]);
    // Many devices fill and empty: the empty ones are dropped in bulk (d1 among them).
    for (const [i, d] of others.entries()) {
      append(100 + i, [d]);
      remove(d, [100 + i]);
    }
    await model.check(s, [...group, ...others.slice(0, 20)]);
    append(5, group);
    append(6, group, false);
    await model.check(s, group);
    for (const d of group) remove(d, model.of(d).slice());
    append(7, group);
    await model.check(s, [...group, ...others.slice(0, 20)]);
    expect(s.size).toBe(10);
  });

  it("keeps a group's devices right when its roster leaves the cache for many other lists", async () => {
    const s = new MemoryQueueStore();
    const model = new Model();
    const group = devices.slice(0, 10);
    const pool = Array.from({ length: 40 }, (_, i) => dev(`p${i}`));
    const append = (n: number, to: readonly DeviceKey[]) =>
      expect(s.appendSync(msg(n), [...to], 1e6, undefined, true)).toEqual(model.append(n, to, 1e6));
    const remove = (d: DeviceKey, ns: number[]) =>
      expect(s.removeSync(d, ns.map(mid))).toBe(model.remove(d, ns));
    append(1, group);
    append(2, group);
    for (const d of group.slice(5)) remove(d, [1, 2]);
    // 7,000 other lists of ten (70,000 keys, more than the cache keeps), each acked at once.
    for (let i = 0; i < 7000; i++) {
      const digits = [i % 40, Math.floor(i / 40) % 40, Math.floor(i / 1600)];
      const to = [...digits.map((k) => pool[k]!), ...pool.slice(30, 37)];
      append(1000 + i, to);
      for (const d of new Set(to)) remove(d, [1000 + i]);
    }
    await model.check(s, [...group, ...pool]);
    remove(group[0]!, [1, 2]); // drains through a roster no longer cached
    remove(group[1]!, [2]); // out of order
    append(3, group);
    await model.check(s, [...group, ...pool]);
    for (const d of group) remove(d, model.of(d).slice());
    append(4, group);
    await model.check(s, [...group, ...pool]);
  });
});
