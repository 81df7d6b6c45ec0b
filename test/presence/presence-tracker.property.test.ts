import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type DeviceId, deviceId, ManualClock, type UserId, userId } from "../../src/core/index.js";
import {
  type DeviceRecord,
  type PresenceHandle,
  PresenceTracker,
  presenceOf,
  type UserPresence,
} from "../../src/presence/index.js";

const users = [userId("a"), userId("b"), userId("c")];
const devices = [deviceId("p"), deviceId("l")];
const viewer = userId("viewer");

type Cmd =
  | { kind: "connect"; u: number; d: number }
  | { kind: "touch"; u: number; d: number }
  | { kind: "touchDevice"; u: number; d: number }
  | { kind: "disconnect"; u: number; d: number; clean: boolean }
  | { kind: "advance"; ms: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ kind: fc.constant("connect" as const), u: fc.nat(2), d: fc.nat(1) }),
  fc.record({ kind: fc.constant("touch" as const), u: fc.nat(2), d: fc.nat(1) }),
  fc.record({ kind: fc.constant("touchDevice" as const), u: fc.nat(2), d: fc.nat(1) }),
  fc.record({
    kind: fc.constant("disconnect" as const),
    u: fc.nat(2),
    d: fc.nat(1),
    clean: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant("advance" as const),
    ms: fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.integer({ min: 0, max: 15_000 })),
  }),
);

/** The reference model: plain device records, updated as the issue describes. */
class Model {
  readonly records = new Map<UserId, Map<DeviceId, DeviceRecord>>();
  constructor(readonly graceMs: number) {}
  apply(c: Cmd, now: number): void {
    if (c.kind === "advance") return;
    const u = users[c.u]!;
    const d = devices[c.d]!;
    let mine = this.records.get(u);
    if (!mine) {
      mine = new Map();
      this.records.set(u, mine);
    }
    const r = mine.get(d);
    if (c.kind === "connect") mine.set(d, { deviceId: d, connected: true, lastActive: now });
    else if (c.kind === "touch")
      mine.set(d, { ...(r ?? { deviceId: d, connected: false }), lastActive: now });
    else if (c.kind === "touchDevice") {
      // only devices that connected once have a handle; the test skips the others
      if (r) mine.set(d, { ...r, lastActive: now });
    } else if (r?.connected) {
      mine.set(d, {
        deviceId: d,
        connected: false,
        lastActive: r.lastActive,
        ...(c.clean || this.graceMs === 0 ? {} : { graceUntil: now + this.graceMs }),
      });
    }
    if (mine.size === 0) this.records.delete(u);
  }
  presence(u: UserId, now: number, threshold: number): UserPresence {
    return presenceOf([...(this.records.get(u)?.values() ?? [])], now, threshold);
  }
}

describe("PresenceTracker properties", () => {
  it("reported status == pure function of the device records; subscribers converge on the final state", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1_000, max: 10_000 }),
        fc.integer({ min: 0, max: 6_000 }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.array(cmd, { maxLength: 60 }),
        (thresholdMs, graceMs, coalesceMs, cmds) => {
          const clock = new ManualClock(1_000);
          const tracker = new PresenceTracker({ clock, thresholdMs, graceMs, coalesceMs });
          const model = new Model(graceMs);
          const lastFrame = new Map<UserId, UserPresence>();
          const lastChange = new Map<UserId, UserPresence>();
          const handles = new Map<string, PresenceHandle>();
          tracker.on("notify", ({ viewer: v, frame }) => {
            expect(v).toBe(viewer);
            lastFrame.set(frame.user as UserId, { status: frame.status, lastSeen: frame.lastSeen });
          });
          tracker.on("change", (u, p) => lastChange.set(u, p));
          tracker.subscribe(viewer, users);
          const check = () => {
            const now = clock.now();
            for (const u of users) {
              const expected = model.presence(u, now, thresholdMs);
              expect(tracker.status(u)).toEqual(expected);
              // the published state (what change events announced) is never stale either
              expect(lastChange.get(u) ?? { status: "offline", lastSeen: null }).toEqual(expected);
            }
          };
          for (const c of cmds) {
            if (c.kind === "advance") clock.advance(c.ms);
            else if (c.kind === "connect") {
              handles.set(`${c.u}/${c.d}`, tracker.connect(users[c.u]!, devices[c.d]!));
            } else if (c.kind === "touch") tracker.touch(users[c.u]!, devices[c.d]!);
            else if (c.kind === "touchDevice") {
              const h = handles.get(`${c.u}/${c.d}`);
              if (h === undefined) continue;
              tracker.touchDevice(h);
            } else tracker.disconnect(users[c.u]!, devices[c.d]!, { clean: c.clean });
            model.apply(c, clock.now());
            check();
          }
          // Let pending coalesced updates go out; states may still change on the way, so
          // step past every deadline until nothing is scheduled but nothing changes.
          clock.advance(Math.max(coalesceMs, thresholdMs, graceMs) + 1);
          clock.advance(coalesceMs + 1);
          check();
          for (const u of users) {
            expect(lastFrame.get(u)).toEqual(model.presence(u, clock.now(), thresholdMs));
          }
          tracker.close();
        },
      ),
      { numRuns: 300 },
    );
  });
});
