import { describe, expect, it } from "vitest";
import { type DeviceKey, groupId, ManualClock, type MessageId } from "../../src/core/index.js";
import { DeliveryQueue, LoadSignal, MemoryQueueStore } from "../../src/queue/index.js";
import { dev, envelope } from "./helpers.js";

const D = Array.from({ length: 10 }, (_, i) => dev(`d${i}`));

function setup(onTx: (q: DeliveryQueue, d: DeviceKey, id: MessageId) => void) {
  const clock = new ManualClock();
  const tx: string[] = [];
  const failed: string[] = [];
  let q!: DeliveryQueue;
  q = new DeliveryQueue({
    clock,
    store: new MemoryQueueStore(),
    load: new LoadSignal({ clock, histogram: false }),
    storeRetry: false,
    ttlMs: 10_000,
    transmit: (d, env) => {
      tx.push(`${d} ${env.id}`);
      onTx(q, d, env.id);
    },
    onFailed: (env, d, r) => failed.push(`${d} ${env.id} ${r}`),
  });
  return { clock, q, tx, failed };
}

/**
 * A fan-out through a roster runs callbacks (online answers, transmissions) device by device.
 * Every device must hold the message before the first one runs: a callback may touch any
 * device of the same fan-out. (Found by review: both failed when the fan-out counted each
 * device just before its own callbacks.)
 */
describe("DeliveryQueue: callbacks inside a roster fan-out", () => {
  it("a transmit that disconnects a later device of the fan-out: that device gets each message once, and no failure after its ack", () => {
    let armed = false;
    const { q, clock, tx, failed } = setup((q, d, id) => {
      if (armed && d === D[0] && id === "m2") q.deviceDisconnected(D[5]!);
    });
    for (const d of D) q.deviceConnected(d);
    q.sync!.enqueueSync(envelope(1), D, { fresh: true });
    armed = true;
    q.sync!.enqueueSync(envelope(2), D, { fresh: true });
    expect(q.pending(D[5]!)).toBe(2);
    tx.length = 0;
    q.deviceConnected(D[5]!);
    expect(tx).toEqual([`${D[5]} m1`, `${D[5]} m2`]);
    expect(q.sync!.ackSync(D[5]!, ["m1", "m2"] as MessageId[])).toBe(2);
    expect(q.pending(D[5]!)).toBe(0);
    clock.advance(20_000);
    expect(failed.filter((f) => f.startsWith(`${D[5]} `))).toEqual([]);
  });

  it("a group message queued from inside a transmit of the same group's fan-out: every offline device gets both, or fails both", () => {
    const { q, clock, tx, failed } = setup((q, d, id) => {
      // d0's client answers the group at once (a bot), and acks m1 while m2 goes out.
      if (d === D[0] && id === "m1") q.sync!.enqueueSync(envelope(2), D, { fresh: true });
      if (d === D[0] && id === "m2") q.sync!.ackSync(d, ["m1"] as MessageId[]);
    });
    q.deviceConnected(D[0]!); // d1..d9 offline
    q.sync!.enqueueSync(envelope(1), D, { fresh: true });
    for (const d of D.slice(1)) expect(q.pending(d)).toBe(2);
    q.deviceConnected(D[1]!);
    expect(tx.filter((t) => t.startsWith(`${D[1]} `))).toEqual([`${D[1]} m1`, `${D[1]} m2`]);
    clock.advance(20_000);
    for (const d of D.slice(2)) {
      expect(failed.filter((f) => f.startsWith(`${d} `))).toEqual([
        `${d} m1 ttl_expired`,
        `${d} m2 ttl_expired`,
      ]);
      expect(q.pending(d)).toBe(0);
    }
    expect(q.depth).toBe(0);
  });
});

describe("DeliveryQueue: a roster's forgotten device", () => {
  it("a sender forgotten while attached is never failed for its own message (found by review)", () => {
    const clock = new ManualClock();
    const failed: string[] = [];
    const q = new DeliveryQueue({
      clock,
      ttlMs: 5000,
      load: new LoadSignal({ clock, histogram: false }),
      transmit: () => {},
      onFailed: (e, d) => failed.push(`${e.id}->${d}`),
    }).sync!;
    const g = (n: number) => ({ ...envelope(n), to: { group: groupId("g") } });
    const but = (i: number) => D.filter((_, j) => j !== i);
    const id = (n: number) => envelope(n).id;
    q.enqueueSync(g(1), but(0), { fresh: true }); // roster D without d0
    q.enqueueSync(g(2), but(1), { fresh: true }); // the union roster D; d0 attached, holds m2
    q.ackSync(D[0]!, [id(2)]); // acked while offline: d0 forgotten
    q.ackSync(D[1]!, [id(1)]);
    for (const d of D.slice(2)) q.ackSync(d, [id(1), id(2)]);
    q.enqueueSync(g(3), but(0), { fresh: true }); // d0 sends: skipped
    clock.advance(6000);
    expect(failed).not.toContain(`m3->${D[0]}`);
    expect(failed.filter((f) => f.startsWith("m3->")).sort()).toEqual(
      but(0)
        .map((d) => `m3->${d}`)
        .sort(),
    );
    expect(q.pending(D[0]!)).toBe(0);
    expect(q.depth).toBe(0);
  });
});

describe("DeliveryQueue: a group's sender on the group's roster", () => {
  it("never gets its own message through the log, however the group's messages alternate", () => {
    const { q, tx } = setup(() => {});
    const sync = q.sync!;
    for (const d of D) q.deviceConnected(d);
    const g = (n: number) => ({ ...envelope(n), to: { group: groupId("g") } });
    const but = (i: number) => D.filter((_, j) => j !== i);
    sync.enqueueSync(g(1), D, { fresh: true }); // every device on the group's roster
    for (const d of D) sync.ackSync(d, [envelope(1).id]); // nothing waiting anywhere
    sync.enqueueSync(g(2), but(0), { fresh: true }); // d0 sends
    sync.enqueueSync(g(3), but(1), { fresh: true }); // d1 sends: d0 gets m3
    for (const d of D) sync.ackSync(d, [envelope(2).id, envelope(3).id]);
    sync.enqueueSync(g(4), but(2), { fresh: true });
    expect(tx.filter((t) => t.startsWith(`${D[0]} `))).toEqual([
      `${D[0]} m1`,
      `${D[0]} m3`,
      `${D[0]} m4`,
    ]);
    expect(tx.filter((t) => t.startsWith(`${D[1]} `))).toEqual([
      `${D[1]} m1`,
      `${D[1]} m2`,
      `${D[1]} m4`,
    ]);
    expect(D.map((d) => q.pending(d))).toEqual(D.map((_, i) => (i === 2 ? 0 : 1)));
  });
});
