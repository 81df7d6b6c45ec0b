import { describe, expect, it } from "vitest";
import {
  type DeviceKey,
  type GroupId,
  groupId,
  type MessageId,
  messageId,
} from "../../src/core/index.js";
import { MemoryQueueStore, type QueuedMessage } from "../../src/queue/index.js";
import { dev, envelope } from "./helpers.js";

/**
 * A group message goes to the group's devices but the sender's, so messages from different
 * senders have different lists: the memory store matches them against the group's one
 * current roster (that roster's list without the sender). Each case runs against a plain
 * list per device.
 */
const mid = (n: number): MessageId => messageId(`m${n}`);
const gmsg = (n: number, group: GroupId | undefined): QueuedMessage => ({
  envelope: group === undefined ? envelope(n) : { ...envelope(n), to: { group } },
  enqueuedAt: 0,
  expiresAt: 1e9,
});
const D = Array.from({ length: 24 }, (_, i) => dev(`d${i}`));
const G = groupId("team");
const without = <T>(xs: readonly T[], x: T): T[] => xs.filter((y) => y !== x);

/** The store and a plain list per device, driven together. */
function world() {
  const s = new MemoryQueueStore();
  const lists = new Map<DeviceKey, number[]>();
  const of = (d: DeviceKey) => {
    let l = lists.get(d);
    if (!l) {
      l = [];
      lists.set(d, l);
    }
    return l;
  };
  const minted = (n: number) => [...lists.values()].every((l) => !l.includes(n));
  /** Appends `n` (to `group`, or to no group with `null`) and checks the answer. */
  const send = (n: number, to: readonly DeviceKey[], group: GroupId | null = G, max = 1e6) => {
    const full = to.filter((d) => !of(d).includes(n) && of(d).length + 1 > max);
    const takers = [...new Set(to)].filter((d) => !of(d).includes(n));
    const want = full.length > 0 ? { ok: false, full } : { ok: true, added: takers.length };
    const fresh = minted(n);
    expect(s.appendSync(gmsg(n, group ?? undefined), to, max, undefined, fresh)).toEqual(want);
    if (full.length === 0) for (const d of takers) of(d).push(n);
  };
  const ack = (d: DeviceKey, ns: readonly number[]) => {
    const l = of(d);
    let want = 0;
    for (const n of ns) {
      const i = l.indexOf(n);
      if (i >= 0) {
        l.splice(i, 1);
        want++;
      }
    }
    expect(s.removeSync(d, ns.map(mid))).toBe(want);
  };
  /** Every device acks all it holds, in order. */
  const drain = () => {
    for (const d of D) ack(d, of(d).slice());
  };
  const check = async (devices: readonly DeviceKey[] = D) => {
    let size = 0;
    for (const d of devices) {
      expect((await s.list(d)).map((m) => m.envelope.id)).toEqual(of(d).map(mid));
      expect(await s.count(d)).toBe(of(d).length);
    }
    for (const l of lists.values()) size += l.length;
    expect(s.size).toBe(size);
    const held = [...lists].filter(([, l]) => l.length > 0).map(([d]) => d);
    expect([...(await s.devices())].sort()).toEqual(held.sort());
  };
  return { s, of, send, ack, drain, check };
}

describe("MemoryQueueStore: group messages to all devices but the sender's", () => {
  it("rotating senders, some holding messages of their own when they send, some having read all", async () => {
    const w = world();
    const group = D.slice(0, 12);
    const senders = group.slice(0, 4);
    /** The router's frozen list per sending device, reused. */
    const lists = senders.map((s) => Object.freeze(without(group, s)));
    let n = 0;
    for (let round = 0; round < 6; round++) {
      for (let k = 0; k < 12; k++) {
        const who = (round + k) % 4;
        // The sender read the chat before writing, half the rounds.
        if (round % 2 === 0) w.ack(senders[who]!, w.of(senders[who]!).slice());
        w.send(++n, lists[who]!);
        await w.check(group);
      }
      // Everyone reads a part, in order; one device acks out of order.
      for (const d of group) w.ack(d, w.of(d).slice(0, 5));
      w.ack(group[7]!, w.of(group[7]!).slice(0, 3).reverse());
      await w.check(group);
    }
    w.drain();
    await w.check(group);
  });

  it("the cap counts the recipients only, and a refused message moves no cursor", async () => {
    const w = world();
    const group = D.slice(0, 10);
    const [a, b, c] = [group[0]!, group[1]!, group[2]!];
    for (let n = 1; n <= 3; n++) w.send(n, group, G, 3);
    for (const d of without(group, a)) w.ack(d, w.of(d).slice());
    // a holds as many as the cap allows, but sends: it is no recipient, so not full.
    w.send(4, without(group, a), G, 3);
    await w.check();
    w.ack(a, w.of(a).slice());
    for (const d of without(group, c)) w.ack(d, w.of(d).slice());
    w.send(5, without(group, b), G, 2);
    w.ack(a, [5]);
    // c would hold 3: refused, all or nothing (a, the sender, holds nothing and gets nothing).
    w.send(6, without(group, a), G, 2);
    await w.check();
    w.send(7, without(group, b), G, 3);
    await w.check();
    w.drain();
    w.send(8, without(group, c));
    await w.check();
  });

  it("a device that left the roster since (a message of its own) still gets its own entry", async () => {
    const w = world();
    const group = D.slice(0, 12);
    const from = (k: number) => Object.freeze(without(group, group[k]!));
    w.send(1, from(0));
    w.drain();
    w.send(2, from(1)); // d1 attached with nothing: its cursor moves on; d0 attaches
    w.drain();
    w.send(3, [group[5]!], null); // d5 holds a message of its own: it leaves the roster
    w.send(4, from(2)); // d2 attached with nothing, d5 its own entries
    w.send(5, from(3));
    await w.check();
    w.ack(group[5]!, [4, 3]); // out of order
    w.send(6, from(2));
    await w.check();
    w.drain();
    await w.check();
  });

  it("a list with a device twice, then the same list without the repeat: each device gets one entry", async () => {
    const w = world();
    const list = D.slice(1, 11);
    w.send(1, [...list, list[9]!]); // all empty: all attach
    w.send(2, list); // its roster lists d10 twice: not that roster without one of them
    w.send(3, [...list, list[0]!]);
    w.send(4, list.slice(1));
    await w.check();
    w.drain();
    w.send(5, [list[0]!, ...list]);
    w.send(6, list);
    await w.check();
  });

  it("a joining device listed already: not a roster with one more device", async () => {
    const w = world();
    const group = D.slice(0, 10);
    w.send(1, group);
    // d1 gone and d0 in its place again: no union of distinct devices.
    w.send(2, [group[0]!, group[0]!, ...group.slice(2)]);
    w.send(3, without(group, group[4]!));
    await w.check();
  });

  it("members join and leave: the group moves to a new roster, and devices holding messages on the old one keep them in order", async () => {
    const w = world();
    let group = D.slice(0, 12);
    let n = 0;
    const round = (count: number) => {
      for (let k = 0; k < count; k++) {
        const s = group[k % group.length]!;
        w.send(++n, Object.freeze(without(group, s)));
      }
    };
    round(5);
    group = [...group.slice(0, 6), D[20]!, ...group.slice(6)]; // joins in the middle
    round(5);
    for (const d of group.slice(0, 6)) w.ack(d, w.of(d).slice());
    await w.check();
    group = without(group, D[3]!); // leaves
    round(5);
    await w.check();
    group = without([...group, D[21]!, D[22]!], D[0]!); // two join and one leaves at once
    round(6);
    await w.check();
    w.ack(D[5]!, w.of(D[5]!).slice(2, 4)); // out of order
    round(3);
    await w.check();
    w.drain();
    round(4);
    await w.check();
  });

  it("a frozen list reused after its roster was replaced, or evicted for many other groups", async () => {
    const w = world();
    const group = D.slice(0, 12);
    const fromD0 = Object.freeze(without(group, D[0]!));
    const fromD1 = Object.freeze(without(group, D[1]!));
    w.send(1, fromD0);
    w.send(2, fromD1);
    w.send(3, fromD0);
    // Another sender's list once members changed: a new roster; then the old lists again.
    w.send(4, Object.freeze(without([...group, D[20]!], D[2]!)));
    w.send(5, fromD0);
    w.send(6, fromD1);
    await w.check();
    for (const d of group.slice(0, 6)) w.ack(d, w.of(d).slice());
    // 700 other groups of 100 devices, one message each, acked: more keys than the cache keeps.
    const pool = Array.from({ length: 200 }, (_, i) => dev(`p${i}`));
    for (let g = 0; g < 700; g++) {
      const to = Array.from({ length: 100 }, (_, i) => pool[(g + i * 7) % 200]!);
      w.send(1000 + g, to, groupId(`other${g}`));
      for (const d of to) w.ack(d, [1000 + g]);
    }
    w.send(7, fromD1);
    w.send(8, fromD0);
    await w.check();
    w.drain();
    w.send(9, fromD1);
    await w.check();
  });

  it("one frozen array as a group's list and as a plain list", async () => {
    const w = world();
    const group = D.slice(0, 12);
    const all = Object.freeze([...group]);
    const fromD3 = Object.freeze(without(group, D[3]!));
    w.send(1, fromD3);
    w.send(2, all);
    w.send(3, fromD3, null);
    w.send(4, fromD3);
    w.send(5, all, null);
    w.send(6, fromD3, groupId("other"));
    w.send(7, all);
    await w.check();
    w.drain();
    w.send(8, fromD3);
    w.send(9, fromD3, null);
    await w.check();
  });
});
