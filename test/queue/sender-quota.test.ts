import { describe, expect, it } from "vitest";
import { type DeviceKey, ManualClock, messageId } from "../../src/core/index.js";
import { DeliveryQueue, LoadSignal, MemoryQueueStore } from "../../src/queue/index.js";
import { dev, envelope } from "./helpers.js";

function setup(perSender: { count?: number; bytes?: number }, maxPerDevice = 10_000) {
  const clock = new ManualClock();
  const sent: string[] = [];
  const q = new DeliveryQueue({
    clock,
    store: new MemoryQueueStore(),
    load: new LoadSignal({ clock, histogram: false }),
    storeRetry: false,
    maxPerDevice,
    perSender,
    transmit: (d, e) => sent.push(`${e.id}->${d}`),
  });
  return { q, sent, clock };
}

const off = () => false;

describe("DeliveryQueue: per-sender quota", () => {
  it("refuses a sender over its byte quota for a device, and nobody else", () => {
    const { q } = setup({ bytes: 4000 });
    const phone = dev("phone");
    const big = (n: number, from: string) => ({
      ...envelope(`${from}${n}`, "normal", from),
      text: "x".repeat(100),
    });
    for (let n = 0; n < 40; n++)
      expect(q.enqueueSync(big(n, "mallory"), [phone], { online: off }).ok).toBe(true);
    expect(q.enqueueSync(big(40, "mallory"), [phone], { online: off })).toEqual({
      ok: false,
      code: "quota_exceeded",
      over: [phone],
    });
    expect(q.enqueueSync(big(0, "alice"), [phone], { online: off }).ok).toBe(true);
    expect(q.pending(phone)).toBe(41);
    expect(q.stats.refused).toBe(1);
  });

  it("counts a group's fan-out held through a roster, and frees the quota as the device acks", () => {
    const { q, sent } = setup({ count: 35 });
    const devices: DeviceKey[] = Array.from({ length: 10 }, (_, i) => dev(`d${i}`));
    const list = Object.freeze(devices.slice());
    const groupMsg = (n: number, from: string) =>
      ({
        ...envelope(`${from}${n}`, "normal", from),
        to: { group: "g1" },
      }) as never;
    for (let n = 0; n < 35; n++)
      expect(q.enqueueSync(groupMsg(n, "mallory"), list, { online: off }).ok).toBe(true);
    const refused = q.enqueueSync(groupMsg(35, "mallory"), list, { online: off });
    expect(refused).toEqual({ ok: false, code: "quota_exceeded", over: devices });
    expect(q.enqueueSync(groupMsg(0, "alice"), list, { online: off }).ok).toBe(true);
    // d0 comes online and acks mallory's messages in order: its share of the quota is free.
    q.deviceConnected(devices[0]!);
    for (let n = 0; n < 35; n++) q.ackSync(devices[0]!, [messageId(`mmallory${n}`)]);
    expect(sent.filter((s) => s.endsWith(`->${devices[0]}`))).toHaveLength(36);
    expect(q.enqueueSync({ ...envelope("mallory99", "normal", "mallory") }, [devices[0]!]).ok).toBe(
      true,
    );
    expect(q.enqueueSync({ ...envelope("mallory98", "normal", "mallory") }, [devices[1]!]).ok).toBe(
      false,
    );
  });

  it("perSender false turns it off: only the device cap refuses, with recipient_queue_full", () => {
    const clock = new ManualClock();
    const q = new DeliveryQueue({ clock, perSender: false, maxPerDevice: 50, transmit: () => {} });
    const phone = dev("phone");
    for (let n = 0; n < 50; n++)
      expect(q.enqueueSync(envelope(n), [phone], { online: off }).ok).toBe(true);
    expect(q.enqueueSync(envelope(50), [phone], { online: off })).toMatchObject({
      code: "recipient_queue_full",
    });
  });
});
