/**
 * The conformance suite of {@link PresenceStore}: every implementation (memory, Redis, a
 * user's own) must pass it. Behaviour is checked through the interface only.
 */
import assert from "node:assert/strict";
import {
  type DeviceId,
  deviceId,
  type NodeId,
  nodeId,
  type UserId,
  userId,
} from "../../core/index.js";
import { type PresenceRecord, type PresenceStore, presenceOf } from "../../presence/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

const alice = userId("conf-alice");
const bob = userId("conf-bob");
const phone = deviceId("phone");
const laptop = deviceId("laptop");
const n1 = nodeId("conf-n1");
const n2 = nodeId("conf-n2");
const TTL = 30_000;

function rec(
  user: UserId,
  device: DeviceId,
  node: NodeId,
  connected: boolean,
  lastActive: number,
): PresenceRecord {
  return { userId: user, deviceId: device, nodeId: node, connected, lastActive };
}

/** Sorted plain copies, so implementations may return records in any order or shape. */
function plain(records: readonly PresenceRecord[]) {
  return records
    .map((r) => ({
      userId: r.userId,
      deviceId: r.deviceId,
      nodeId: r.nodeId,
      connected: r.connected,
      lastActive: r.lastActive,
    }))
    .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
}

/** The cases every {@link PresenceStore} must pass. */
export function presenceStoreConformance(factory: PortFactory<PresenceStore>): ConformanceCase[] {
  const withStore =
    (body: (s: PresenceStore) => Promise<void>): (() => Promise<void>) =>
    async () => {
      const store = await factory.create();
      try {
        await body(store);
      } finally {
        await factory.dispose?.(store);
      }
    };
  const cases: ConformanceCase[] = [
    {
      name: "presence store: an unknown user has no records",
      run: withStore(async (s) => {
        assert.deepEqual(await s.read(alice, 0), []);
      }),
    },
    {
      name: "presence store: writeIfOwner writes only over a record the writer owns",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 1_000, TTL);
        await s.heartbeat(n2, 1_000, TTL);
        // No record yet: nothing to own, nothing written.
        assert.equal(await s.writeIfOwner(rec(alice, phone, n1, false, 1_000)), false);
        assert.deepEqual(await s.read(alice, 1_000), []);
        await s.write(rec(alice, phone, n1, true, 1_000));
        assert.equal(await s.writeIfOwner(rec(alice, phone, n1, false, 1_500)), true);
        assert.deepEqual(plain(await s.read(alice, 2_000)), [rec(alice, phone, n1, false, 1_500)]);
        // The device moved to n2: n1 can no longer overwrite it.
        await s.write(rec(alice, phone, n2, true, 2_000));
        assert.equal(await s.writeIfOwner(rec(alice, phone, n1, false, 2_500)), false);
        assert.deepEqual(plain(await s.read(alice, 2_600)), [rec(alice, phone, n2, true, 2_000)]);
      }),
    },
    {
      name: "presence store: records of a live node read back as written, per device",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 1_000, TTL);
        await s.write(rec(alice, phone, n1, true, 1_000));
        await s.write(rec(alice, laptop, n1, false, 500));
        await s.write(rec(bob, phone, n1, true, 900));
        assert.deepEqual(plain(await s.read(alice, 2_000)), [
          rec(alice, laptop, n1, false, 500),
          rec(alice, phone, n1, true, 1_000),
        ]);
        assert.deepEqual(plain(await s.read(bob, 2_000)), [rec(bob, phone, n1, true, 900)]);
      }),
    },
    {
      name: "presence store: a write replaces the device's record, and may move it to another node",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 0, TTL);
        await s.heartbeat(n2, 0, TTL);
        await s.write(rec(alice, phone, n1, true, 100));
        await s.write(rec(alice, phone, n2, true, 200));
        assert.deepEqual(plain(await s.read(alice, 300)), [rec(alice, phone, n2, true, 200)]);
        // n1 dying no longer concerns the device
        assert.deepEqual([...(await s.expireNode(n1, 250))], []);
        assert.deepEqual(plain(await s.read(alice, 300)), [rec(alice, phone, n2, true, 200)]);
      }),
    },
    {
      name: "presence store: remove forgets one device only",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 0, TTL);
        await s.write(rec(alice, phone, n1, true, 10));
        await s.write(rec(alice, laptop, n1, true, 20));
        await s.remove(alice, phone);
        await s.remove(alice, deviceId("never"));
        assert.deepEqual(plain(await s.read(alice, 30)), [rec(alice, laptop, n1, true, 20)]);
        await s.remove(alice, laptop);
        assert.deepEqual(await s.read(alice, 30), []);
      }),
    },
    {
      name: "presence store: a lapsed lease expires the node's connected records at its last heartbeat",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 1_000, TTL);
        await s.write(rec(alice, phone, n1, true, 500));
        await s.write(rec(alice, laptop, n1, false, 400));
        await s.heartbeat(n1, 5_000, TTL);
        assert.deepEqual(plain(await s.read(alice, 5_000 + TTL - 1)), [
          rec(alice, laptop, n1, false, 400),
          rec(alice, phone, n1, true, 500),
        ]);
        const after = await s.read(alice, 5_000 + TTL);
        assert.deepEqual(plain(after), [
          rec(alice, laptop, n1, false, 400),
          rec(alice, phone, n1, false, 5_000),
        ]);
        assert.deepEqual(presenceOf(after, 5_000 + TTL, 10_000), {
          status: "offline",
          lastSeen: 5_000,
        });
      }),
    },
    {
      name: "presence store: a late heartbeat never shortens a lease",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 10_000, TTL);
        await s.heartbeat(n1, 1_000, TTL);
        await s.write(rec(alice, phone, n1, true, 10_000));
        const r = await s.read(alice, 1_000 + TTL + 1);
        assert.equal(r[0]?.connected, true);
      }),
    },
    {
      name: "presence store: records of a node that never heartbeated count as expired",
      run: withStore(async (s) => {
        await s.write(rec(alice, phone, n1, true, 700));
        assert.deepEqual(plain(await s.read(alice, 800)), [rec(alice, phone, n1, false, 700)]);
      }),
    },
    {
      name: "presence store: expireNode disconnects that node's devices, last seen = its last heartbeat",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 0, TTL);
        await s.heartbeat(n2, 0, TTL);
        await s.write(rec(alice, phone, n1, true, 1_000));
        await s.write(rec(alice, laptop, n2, true, 1_500));
        await s.write(rec(bob, phone, n1, true, 9_000));
        await s.write(rec(bob, laptop, n1, false, 100));
        const users = await s.expireNode(n1, 4_000);
        assert.deepEqual([...users].sort(), [alice, bob].sort());
        assert.deepEqual(plain(await s.read(alice, 4_100)), [
          rec(alice, laptop, n2, true, 1_500),
          rec(alice, phone, n1, false, 4_000),
        ]);
        // activity newer than the heartbeat is kept: it was really seen
        const bobs = await s.read(bob, 20_000);
        assert.deepEqual(plain(bobs), [
          rec(bob, laptop, n1, false, 100),
          rec(bob, phone, n1, false, 9_000),
        ]);
        assert.deepEqual(presenceOf(bobs, 20_000, 10_000), { status: "offline", lastSeen: 9_000 });
      }),
    },
    {
      name: "presence store: expireNode is idempotent and ignores unknown nodes",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 0, TTL);
        await s.write(rec(alice, phone, n1, true, 50));
        assert.deepEqual([...(await s.expireNode(n1, 60))], [alice]);
        assert.deepEqual([...(await s.expireNode(n1, 70))], []);
        assert.deepEqual([...(await s.expireNode(nodeId("conf-none"), 70))], []);
        assert.deepEqual(plain(await s.read(alice, 100)), [rec(alice, phone, n1, false, 60)]);
      }),
    },
    {
      name: "presence store: a device reconnecting on a new node after expiry is connected again",
      run: withStore(async (s) => {
        await s.heartbeat(n1, 0, TTL);
        await s.write(rec(alice, phone, n1, true, 10));
        await s.expireNode(n1, 20);
        await s.heartbeat(n2, 30, TTL);
        await s.write(rec(alice, phone, n2, true, 30));
        assert.deepEqual(plain(await s.read(alice, 40)), [rec(alice, phone, n2, true, 30)]);
        assert.equal(presenceOf(await s.read(alice, 40), 40, 10_000).status, "online");
      }),
    },
  ];
  return cases;
}
