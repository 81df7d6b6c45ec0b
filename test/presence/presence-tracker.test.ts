import { describe, expect, it } from "vitest";
import {
  deviceId,
  groupId,
  isRelayError,
  ManualClock,
  sessionId,
  type UserId,
  userId,
} from "../../src/core/index.js";
import {
  audiencePrivacy,
  type PresenceNotification,
  type PresencePrivacySettings,
  PresenceTracker,
  type PresenceTrackerOptions,
  type TypingNotification,
} from "../../src/presence/index.js";

const alice = userId("alice");
const bob = userId("bob");
const carol = userId("carol");
const phone = deviceId("phone");
const laptop = deviceId("laptop");

function setup(options: PresenceTrackerOptions = {}) {
  const clock = new ManualClock(0);
  const tracker = new PresenceTracker({ clock, coalesceMs: 0, ...options });
  const notes: (PresenceNotification & { at: number })[] = [];
  const typing: (TypingNotification & { at: number })[] = [];
  tracker.on("notify", (n) => notes.push({ ...n, at: clock.now() }));
  tracker.on("typing", (n) => typing.push({ ...n, at: clock.now() }));
  /** What `viewer` was told about `subject`, as [status, lastSeen, at] rows. */
  const told = (viewer: UserId, subject: UserId) =>
    notes
      .filter((n) => n.viewer === viewer && n.frame.user === subject)
      .map((n) => [n.frame.status, n.frame.lastSeen, n.at]);
  return { clock, tracker, notes, typing, told };
}

describe("PresenceTracker: threshold", () => {
  it("shows online at 9.9 s after the last activity and last seen at 10.1 s", () => {
    const { clock, tracker, told } = setup();
    clock.advanceTo(1_000);
    tracker.connect(alice, phone);
    tracker.subscribe(bob, [alice]);
    clock.advanceTo(1_000 + 9_900);
    expect(tracker.status(alice)).toEqual({ status: "online", lastSeen: null });
    clock.advanceTo(1_000 + 10_100);
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 1_000 });
    // pushed by the deadline timer at exactly 11 s, no polling
    expect(told(bob, alice)).toEqual([
      ["online", null, 1_000],
      ["offline", 1_000, 11_000],
    ]);
  });

  it("activity pushes the deadline; the user comes back online on the next activity", () => {
    const { clock, tracker, told } = setup();
    tracker.connect(alice, phone);
    tracker.subscribe(bob, [alice]);
    clock.advanceTo(5_000);
    tracker.touch(alice, phone);
    clock.advanceTo(14_900);
    expect(tracker.status(alice).status).toBe("online");
    clock.advanceTo(15_100);
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 5_000 });
    clock.advanceTo(20_000);
    tracker.touch(alice, phone);
    expect(tracker.status(alice).status).toBe("online");
    expect(told(bob, alice)).toEqual([
      ["online", null, 0],
      ["offline", 5_000, 15_000],
      ["online", null, 20_000],
    ]);
  });

  it("two devices: the idle one does not keep the user online", () => {
    const { clock, tracker, told } = setup();
    tracker.connect(alice, phone);
    tracker.connect(alice, laptop);
    tracker.subscribe(bob, [alice]);
    for (let t = 2_000; t <= 30_000; t += 2_000) {
      clock.advanceTo(t);
      tracker.touch(alice, phone);
    }
    expect(tracker.status(alice).status).toBe("online");
    clock.advanceTo(39_999);
    expect(tracker.status(alice).status).toBe("online");
    clock.advanceTo(40_000);
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 30_000 });
    expect(told(bob, alice)).toEqual([
      ["online", null, 0],
      ["offline", 30_000, 40_000],
    ]);
    // the laptop is still connected: its activity brings the user back
    tracker.touch(alice, laptop);
    expect(tracker.status(alice).status).toBe("online");
  });

  it("activity from an unknown device records last seen but not online", () => {
    const { clock, tracker } = setup();
    clock.advanceTo(700);
    tracker.touch(carol, phone);
    expect(tracker.status(carol)).toEqual({ status: "offline", lastSeen: 700 });
    expect(tracker.status(userId("nobody"))).toEqual({ status: "offline", lastSeen: null });
  });

  it("keeps one deadline per online user, not one timer per touch", () => {
    const { clock, tracker } = setup();
    for (let i = 0; i < 100; i++) tracker.connect(userId(`u${i}`), phone);
    for (let i = 0; i < 1_000; i++) tracker.touch(userId(`u${i % 100}`), phone);
    expect(clock.pending).toBe(1);
    clock.advance(10_000);
    for (let i = 0; i < 100; i++) expect(tracker.status(userId(`u${i}`)).status).toBe("offline");
    expect(clock.pending).toBe(0);
  });
});

describe("PresenceTracker: disconnects and the grace window", () => {
  it("a clean disconnect goes offline at once, last seen = last activity", () => {
    const { clock, tracker, told } = setup();
    tracker.connect(alice, phone);
    clock.advanceTo(3_000);
    tracker.touch(alice, phone);
    tracker.subscribe(bob, [alice]);
    clock.advanceTo(4_000);
    tracker.disconnect(alice, phone, { clean: true });
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 3_000 });
    expect(told(bob, alice)).toEqual([
      ["online", null, 3_000],
      ["offline", 3_000, 4_000],
    ]);
  });

  it("an unclean disconnect followed by a quick reconnect never flaps", () => {
    const { clock, tracker, told } = setup({ graceMs: 5_000 });
    tracker.connect(alice, phone);
    tracker.subscribe(bob, [alice]);
    clock.advanceTo(2_000);
    tracker.disconnect(alice, phone, { clean: false });
    clock.advanceTo(4_000);
    expect(tracker.status(alice).status).toBe("online");
    tracker.connect(alice, phone);
    clock.advanceTo(8_000);
    expect(tracker.status(alice).status).toBe("online");
    expect(told(bob, alice)).toEqual([["online", null, 0]]);
  });

  it("an unclean disconnect without reconnect goes offline when the grace ends, last seen = last activity", () => {
    const { clock, tracker, told } = setup({ graceMs: 5_000 });
    tracker.connect(alice, phone);
    clock.advanceTo(1_000);
    tracker.touch(alice, phone);
    tracker.subscribe(bob, [alice]);
    clock.advanceTo(2_000);
    tracker.disconnect(alice, phone, { clean: false });
    clock.advanceTo(20_000);
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 1_000 });
    expect(told(bob, alice)).toEqual([
      ["online", null, 1_000],
      ["offline", 1_000, 7_000],
    ]);
  });

  it("ignores a late disconnect of an older session of the same device", () => {
    const { clock, tracker } = setup({ graceMs: 0 });
    tracker.connect(alice, phone, sessionId("s1"));
    clock.advanceTo(100);
    tracker.connect(alice, phone, sessionId("s2"));
    tracker.disconnect(alice, phone, { clean: false, sessionId: sessionId("s1") });
    expect(tracker.status(alice).status).toBe("online");
    tracker.disconnect(alice, phone, { clean: true, sessionId: sessionId("s2") });
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 100 });
  });

  it("forget drops a user entirely", () => {
    const { tracker } = setup();
    tracker.connect(alice, phone);
    tracker.forget(alice);
    expect(tracker.size).toBe(0);
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: null });
    tracker.connect(bob, phone);
    expect(tracker.status(bob).status).toBe("online");
  });
});

describe("PresenceTracker: subscriptions and coalescing", () => {
  it("sends the current state on subscribe, then changes only", () => {
    const { clock, tracker, told } = setup();
    tracker.subscribe(bob, [alice]);
    tracker.connect(alice, phone);
    tracker.touch(alice, phone);
    clock.advanceTo(1_000);
    tracker.touch(alice, phone);
    expect(told(bob, alice)).toEqual([
      ["offline", null, 0],
      ["online", null, 0],
    ]);
  });

  it("sends at most one update per subject per interval, and only real changes", () => {
    const { clock, tracker, told } = setup({ coalesceMs: 1_000, graceMs: 0 });
    tracker.subscribe(bob, [alice]);
    tracker.subscribe(carol, [alice]);
    tracker.connect(alice, phone); // t=0: sent at once (nothing sent before)
    clock.advanceTo(100);
    tracker.disconnect(alice, phone, { clean: true });
    clock.advanceTo(200);
    tracker.connect(alice, phone); // back to what was sent: nothing to send at 1 s
    clock.advanceTo(1_500);
    tracker.disconnect(alice, phone, { clean: true }); // >= 1 s since the last update: at once
    clock.advanceTo(1_600);
    tracker.connect(alice, phone);
    clock.advanceTo(1_700);
    tracker.disconnect(alice, phone, { clean: true });
    clock.advanceTo(1_800);
    tracker.connect(alice, phone); // pending flush at 2.5 s sends the latest state only
    clock.advanceTo(5_000);
    const expected = [
      ["offline", null, 0],
      ["online", null, 0],
      ["offline", 200, 1_500],
      ["online", null, 2_500],
    ];
    expect(told(bob, alice)).toEqual(expected);
    expect(told(carol, alice)).toEqual(expected);
  });

  it("unsubscribe stops updates; unsubscribeAll drops everything", () => {
    const { tracker, notes } = setup();
    tracker.subscribe(bob, [alice, carol]);
    expect(tracker.subscriptionsOf(bob).sort()).toEqual([alice, carol]);
    tracker.unsubscribe(bob, [alice]);
    const before = notes.length;
    tracker.connect(alice, phone);
    expect(notes.length).toBe(before);
    tracker.unsubscribeAll(bob);
    tracker.connect(carol, phone);
    expect(notes.length).toBe(before);
    expect(tracker.subscriptionsOf(bob)).toEqual([]);
  });

  it("one subject fans out to every subscriber", () => {
    const { tracker, notes } = setup();
    const viewers = Array.from({ length: 50 }, (_, i) => userId(`v${i}`));
    for (const v of viewers) tracker.subscribe(v, [alice]);
    notes.length = 0;
    tracker.connect(alice, phone);
    expect(notes.map((n) => n.viewer).sort()).toEqual([...viewers].sort());
    expect(notes.every((n) => n.frame.status === "online")).toBe(true);
  });
});

describe("PresenceTracker: privacy", () => {
  const settings = new Map<UserId, PresencePrivacySettings>();
  const contacts = new Map<UserId, Set<UserId>>([[alice, new Set([bob])]]);
  const privacy = audiencePrivacy({
    settingsOf: (u) => settings.get(u),
    isContact: (o, u) => contacts.get(o)?.has(u) ?? false,
  });

  it("applies audiences per viewer: contacts see last seen, others do not", () => {
    settings.clear();
    settings.set(alice, { lastSeen: "contacts", online: "everyone" });
    const { clock, tracker, told } = setup({ privacy });
    tracker.subscribe(bob, [alice]);
    tracker.subscribe(carol, [alice]);
    tracker.connect(alice, phone);
    clock.advanceTo(2_000);
    tracker.disconnect(alice, phone, { clean: true });
    expect(told(bob, alice)).toEqual([
      ["offline", null, 0],
      ["online", null, 0],
      ["offline", 0, 2_000],
    ]);
    expect(told(carol, alice)).toEqual([
      ["offline", null, 0],
      ["online", null, 0],
      ["offline", null, 2_000],
    ]);
  });

  it("nobody: viewers never learn anything, not even that something changed", () => {
    settings.clear();
    settings.set(alice, { lastSeen: "nobody", online: "nobody" });
    const { clock, tracker, told } = setup({ privacy });
    tracker.subscribe(bob, [alice]);
    tracker.connect(alice, phone);
    clock.advanceTo(20_000);
    expect(told(bob, alice)).toEqual([["offline", null, 0]]);
    tracker.subscribe(alice, [alice]);
    expect(told(alice, alice)).toEqual([["offline", 0, 20_000]]);
  });

  it("reciprocal: a viewer who hides last seen sees none; privacyChanged re-applies", () => {
    settings.clear();
    settings.set(bob, { lastSeen: "nobody", online: "everyone" });
    const { clock, tracker, told } = setup({ privacy });
    tracker.connect(alice, phone);
    clock.advanceTo(15_000);
    tracker.subscribe(bob, [alice]);
    expect(told(bob, alice)).toEqual([["offline", null, 15_000]]);
    settings.set(bob, { lastSeen: "everyone", online: "everyone" });
    tracker.privacyChanged(bob);
    expect(told(bob, alice)).toEqual([
      ["offline", null, 15_000],
      ["offline", 0, 15_000],
    ]);
  });
});

describe("PresenceTracker: typing", () => {
  it("routes composing to the peer and pauses it by itself after the timeout", () => {
    const { clock, tracker, typing } = setup({ typingTimeoutMs: 5_000 });
    tracker.typing(alice, bob, "composing");
    clock.advanceTo(3_000);
    tracker.typing(alice, bob, "composing"); // refresh: no new frame, later expiry
    clock.advanceTo(7_999);
    expect(typing.map((t) => [t.frame.state, t.at])).toEqual([["composing", 0]]);
    clock.advanceTo(8_000);
    expect(typing.map((t) => [t.frame.state, t.at])).toEqual([
      ["composing", 0],
      ["paused", 8_000],
    ]);
    expect(typing[0]).toMatchObject({
      to: { user: bob },
      frame: { type: "typing", from: alice, to: { user: bob }, conversation: "dm:alice:bob" },
    });
    expect(clock.pending).toBe(0);
  });

  it("an explicit paused ends it once; a stray paused sends nothing", () => {
    const { tracker, typing } = setup();
    tracker.typing(alice, bob, "paused");
    tracker.typing(alice, bob, "composing");
    tracker.typing(alice, bob, "paused");
    tracker.typing(alice, bob, "paused");
    expect(typing.map((t) => t.frame.state)).toEqual(["composing", "paused"]);
  });

  it("a user going offline stops typing; groups get their conversation", () => {
    const { tracker, typing } = setup({ graceMs: 0 });
    tracker.connect(alice, phone);
    tracker.typing(alice, { group: groupId("g1") }, "composing");
    tracker.disconnect(alice, phone, { clean: true });
    expect(typing.map((t) => [t.frame.state, t.frame.conversation])).toEqual([
      ["composing", "g:g1"],
      ["paused", "g:g1"],
    ]);
  });
});

describe("PresenceTracker: options", () => {
  it("rejects bad options with invalid_option", () => {
    const bad: unknown[] = [
      { thresholdMs: 0 },
      { graceMs: -1 },
      { coalesceMs: 1.5 },
      { typingTimeoutMs: "5s" },
      { clock: {} },
      { privacy: 3 },
    ];
    for (const o of bad) {
      let err: unknown;
      try {
        new PresenceTracker(o as PresenceTrackerOptions);
      } catch (e) {
        err = e;
      }
      expect(isRelayError(err, "invalid_option"), JSON.stringify(o)).toBe(true);
    }
    expect(() => new PresenceTracker({ thresholdMs: 0 })).toThrow(
      "PresenceTracker: Expected `thresholdMs` to be a number >= 1, got `0` (number)",
    );
  });
});

describe("PresenceTracker: device handles", () => {
  it("touchDevice records activity like touch, without the lookups", () => {
    const { clock, tracker } = setup();
    const h = tracker.connect(alice, phone);
    tracker.connect(alice, laptop);
    clock.advanceTo(8_000);
    tracker.touchDevice(h);
    clock.advanceTo(17_999);
    expect(tracker.status(alice).status).toBe("online");
    clock.advanceTo(18_000);
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: 8_000 });
    clock.advanceTo(19_000);
    tracker.touchDevice(h);
    expect(tracker.status(alice).status).toBe("online");
  });

  it("a handle of a forgotten user goes stale and is ignored, even when its slot is reused", () => {
    const { clock, tracker } = setup();
    const h = tracker.connect(alice, phone);
    tracker.forget(alice);
    tracker.connect(bob, phone); // reuses the freed slot
    clock.advanceTo(20_000);
    tracker.touchDevice(h);
    expect(tracker.status(bob)).toEqual({ status: "offline", lastSeen: 0 });
    expect(tracker.status(alice)).toEqual({ status: "offline", lastSeen: null });
  });
});

describe("PresenceTracker: close", () => {
  it("cancels every timer and schedules none after", () => {
    const { clock, tracker, typing } = setup({ coalesceMs: 1_000 });
    tracker.subscribe(bob, [alice]);
    tracker.connect(alice, phone);
    tracker.disconnect(alice, phone, { clean: true });
    tracker.typing(carol, bob, "composing");
    expect(clock.pending).toBeGreaterThan(0);
    tracker.close();
    expect(clock.pending).toBe(0);
    tracker.connect(carol, phone);
    tracker.typing(carol, alice, "composing");
    expect(clock.pending).toBe(0);
    expect(tracker.status(carol).status).toBe("online");
    expect(typing).toHaveLength(1);
  });
});
