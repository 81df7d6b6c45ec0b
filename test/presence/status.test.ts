import { describe, expect, it } from "vitest";
import { deviceId } from "../../src/core/index.js";
import {
  type DeviceRecord,
  nextPresenceChange,
  presenceOf,
  samePresence,
} from "../../src/presence/index.js";

const phone = deviceId("phone");
const laptop = deviceId("laptop");
const T = 10_000;

describe("presenceOf", () => {
  it("is offline with no last seen for a user with no devices", () => {
    expect(presenceOf([], 5, T)).toEqual({ status: "offline", lastSeen: null });
    expect(nextPresenceChange([], 5, T)).toBe(Number.POSITIVE_INFINITY);
  });

  it("is online strictly inside the threshold: 9.9 s online, 10 s and 10.1 s last seen", () => {
    const d: DeviceRecord[] = [{ deviceId: phone, connected: true, lastActive: 1_000 }];
    expect(presenceOf(d, 1_000 + 9_900, T)).toEqual({ status: "online", lastSeen: null });
    expect(presenceOf(d, 1_000 + 10_000, T)).toEqual({ status: "offline", lastSeen: 1_000 });
    expect(presenceOf(d, 1_000 + 10_100, T)).toEqual({ status: "offline", lastSeen: 1_000 });
    expect(nextPresenceChange(d, 1_000, T)).toBe(11_000);
  });

  it("needs a connected device: recent activity from a disconnected one only sets last seen", () => {
    const d: DeviceRecord[] = [{ deviceId: phone, connected: false, lastActive: 900 }];
    expect(presenceOf(d, 1_000, T)).toEqual({ status: "offline", lastSeen: 900 });
  });

  it("takes last seen from the newest activity of any device", () => {
    const d: DeviceRecord[] = [
      { deviceId: phone, connected: false, lastActive: 300 },
      { deviceId: laptop, connected: true, lastActive: 700 },
    ];
    expect(presenceOf(d, 20_000, T)).toEqual({ status: "offline", lastSeen: 700 });
  });

  it("keeps a dropped device online inside its grace window, never beyond the threshold", () => {
    const d: DeviceRecord[] = [
      { deviceId: phone, connected: false, lastActive: 0, graceUntil: 3_000 },
    ];
    expect(presenceOf(d, 2_999, T).status).toBe("online");
    expect(presenceOf(d, 3_000, T)).toEqual({ status: "offline", lastSeen: 0 });
    expect(nextPresenceChange(d, 1_000, T)).toBe(3_000);
    const late: DeviceRecord[] = [
      { deviceId: phone, connected: false, lastActive: 0, graceUntil: 12_000 },
    ];
    expect(nextPresenceChange(late, 1_000, T)).toBe(10_000);
    expect(presenceOf(late, 10_000, T).status).toBe("offline");
  });

  it("ignores graceUntil while connected", () => {
    const d: DeviceRecord[] = [{ deviceId: phone, connected: true, lastActive: 0, graceUntil: 1 }];
    expect(presenceOf(d, 5_000, T).status).toBe("online");
  });

  it("changes next when the last active device stops counting", () => {
    const d: DeviceRecord[] = [
      { deviceId: phone, connected: true, lastActive: 0 },
      { deviceId: laptop, connected: true, lastActive: 4_000 },
    ];
    expect(nextPresenceChange(d, 5_000, T)).toBe(14_000);
  });

  it("compares states", () => {
    expect(
      samePresence({ status: "online", lastSeen: null }, { status: "online", lastSeen: null }),
    ).toBe(true);
    expect(
      samePresence({ status: "offline", lastSeen: 1 }, { status: "offline", lastSeen: 2 }),
    ).toBe(false);
  });
});
