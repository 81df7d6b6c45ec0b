import { expect, it } from "vitest";
import {
  type DeviceId,
  deviceKey,
  ManualClock,
  MemorySessionDirectory,
  type MessageId,
  type NodeId,
  Router,
  type SessionId,
  sequentialIds,
  type UserId,
} from "../../src/index.js";

const bob = "bob" as UserId;
const session = (id: string, deviceId: string) => ({
  sessionId: id as SessionId,
  userId: bob,
  deviceId: deviceId as DeviceId,
  nodeId: "node-1" as NodeId,
  connectedAt: 0,
});
const alice = {
  userId: "alice" as UserId,
  deviceId: "p" as DeviceId,
  sessionId: "sa" as SessionId,
};

it.each([
  ["a directory that answers per device", true],
  ["a directory that answers per user", false],
])(
  "one flush that holds a retry of E2 for one device and E1, E2 for another keeps each device's order (%s)",
  async (_, perDevice) => {
    const clock = new ManualClock(0);
    const directory = new MemorySessionDirectory();
    if (!perDevice) Object.defineProperty(directory, "lookupDeviceSync", { value: undefined });
    const router = new Router({ clock, ids: sequentialIds("t"), directory });
    const got: [SessionId, string][] = [];
    router.attach((sessions, frame) => {
      if (frame.type === "message") for (const s of sessions) got.push([s, frame.id]);
    });
    await router.connect(session("sx", "x"));
    await router.connect(session("sd", "d"));
    await router.disconnect("sd" as SessionId);
    const send = (id: string) =>
      router.send(alice, { type: "send", id, to: { user: bob }, text: id });
    await send("c1");
    const [, e1] = got[0]!;
    await router.receipt(
      { userId: bob, deviceId: "x" as DeviceId, sessionId: "sx" as SessionId },
      {
        type: "receipt",
        status: "delivered",
        ids: [e1 as MessageId],
      },
    );
    await send("c2");
    const [, e2] = got[1]!;
    got.length = 0;
    // In one tick: x comes back on a new connection and gets E2 again (a redelivery goes
    // to a new connection), then d comes back and is sent E1 and E2.
    router.directory.unregister("sx" as SessionId);
    router.directory.register(session("sx2", "x"));
    router.outbox.deviceDisconnected(deviceKey(bob, "x" as DeviceId));
    await router.outbox.deviceConnected(deviceKey(bob, "x" as DeviceId));
    router.directory.register(session("sd2", "d"));
    await router.outbox.deviceConnected(deviceKey(bob, "d" as DeviceId));
    for (let i = 0; i < 5; i++) await Promise.resolve();
    expect(got.filter(([s]) => s === "sx2").map(([, id]) => id)).toContain(e2);
    expect(got.filter(([s]) => s === "sd2").map(([, id]) => id)).toEqual([e1, e2]);
    await router.close();
  },
);
