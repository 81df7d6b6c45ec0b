import { describe, expect, it } from "vitest";
import type { DeviceId, NodeId, UserId } from "../../src/core/index.js";
import { MemoryPresenceStore } from "../../src/presence/index.js";
import { presenceStoreConformance } from "../../src/testing/conformance/presence-store.js";

describe("MemoryPresenceStore conformance", () => {
  for (const c of presenceStoreConformance({ create: async () => new MemoryPresenceStore() })) {
    it(c.name, c.run);
  }
});

describe("MemoryPresenceStore.readSync", () => {
  it("answers what read answers, in the same turn", async () => {
    const store = new MemoryPresenceStore();
    const u = "alice" as UserId;
    const n1 = "n1" as NodeId;
    await store.heartbeat(n1, 0, 1000);
    void store.write({
      userId: u,
      deviceId: "d1" as DeviceId,
      nodeId: n1,
      connected: true,
      lastActive: 5,
    });
    expect(store.readSync(u, 10)).toEqual([
      { userId: u, deviceId: "d1", nodeId: n1, connected: true, lastActive: 5 },
    ]);
    // past the lease: read as disconnected, last active = max(its own, the last heartbeat)
    expect(store.readSync(u, 2000)).toEqual(await store.read(u, 2000));
    expect(store.readSync(u, 2000)[0]).toMatchObject({ connected: false, lastActive: 5 });
    expect(store.readSync("bob" as UserId, 10)).toEqual([]);
  });
});
