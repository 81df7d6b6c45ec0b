import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ClientMessageId,
  type ConversationId,
  type DeviceId,
  deviceKey,
  type GroupId,
  type MessageId,
  type UserId,
} from "../../src/core/ids.js";
import type { Envelope } from "../../src/core/types.js";
import { MemoryMessageStore } from "../../src/router/message-store.js";
import { messageStoreConformance } from "../../src/testing/conformance/message-store.js";

describe("MemoryMessageStore conformance", () => {
  for (const c of messageStoreConformance({
    create: async (retention) => new MemoryMessageStore(retention),
  })) {
    it(c.name, c.run);
  }
});

describe("MemoryMessageStore delivery bookkeeping", () => {
  const env = (id: string): Envelope => ({
    id: id as MessageId,
    clientId: `c-${id}` as ClientMessageId,
    from: "alice" as UserId,
    fromDevice: "phone" as DeviceId,
    to: { group: "g1" as GroupId },
    conversation: "g:g1" as ConversationId,
    seq: 1,
    ts: 1,
    text: "hi",
    priority: "normal",
  });
  const keys = (n: number) =>
    Array.from({ length: n }, (_, i) => deviceKey(`u${i}` as UserId, "d1" as DeviceId));

  it("relay mode drops a message once every recipient has it, whatever the order", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.nat(), { maxLength: 120 }),
        (n, picks) => {
          const s = new MemoryMessageStore();
          const devices = keys(n);
          s.putSync(env("m1"), devices);
          const have = new Set<string>();
          // Picks mix in-order runs, repeats and unknown devices.
          for (const p of picks) {
            const d =
              p % 7 === 0 ? deviceKey("stranger" as UserId, "x" as DeviceId) : devices[p % n]!;
            s.deliveredSync("m1" as MessageId, d);
            if (devices.includes(d)) have.add(d);
            expect(s.getSync("m1" as MessageId) === undefined).toBe(have.size === n);
          }
          for (const d of devices) s.deliveredSync("m1" as MessageId, d);
          expect(s.getSync("m1" as MessageId)).toBeUndefined();
          expect(s.size).toBe(0);
        },
      ),
    );
  });

  it("keeps its own copy of the recipient list", () => {
    const s = new MemoryMessageStore();
    const devices = keys(3);
    s.putSync(env("m1"), devices);
    devices.length = 0;
    for (const d of keys(2)) s.deliveredSync("m1" as MessageId, d);
    expect(s.getSync("m1" as MessageId)).toBeDefined();
    s.deliveredSync("m1" as MessageId, keys(3)[2]!);
    expect(s.getSync("m1" as MessageId)).toBeUndefined();
  });
});
