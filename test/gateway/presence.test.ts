import { describe, expect, it } from "vitest";
import { type GroupId, userId } from "../../src/core/index.js";
import { presenceBridge } from "../../src/gateway/index.js";
import { GroupService } from "../../src/groups/index.js";
import {
  audiencePrivacy,
  type PresencePrivacySettings,
  PresenceTracker,
  type PresenceTrackerOptions,
} from "../../src/presence/index.js";
import { type ClusterDevice, cluster } from "../support/cluster.js";

const T0 = 1_000_000;

/** One node whose gateway feeds a PresenceTracker (threshold 10 s) through the presence bridge. */
function world(opts: Omit<PresenceTrackerOptions, "clock"> = {}) {
  let tracker: PresenceTracker | undefined;
  const groups = new GroupService();
  const c = cluster(1, {
    router: () => ({ groups }),
    gateway: (ctx, router) => {
      tracker = new PresenceTracker({ clock: ctx.clock, thresholdMs: 10_000, ...opts });
      return { presence: presenceBridge(tracker, router) };
    },
  });
  /** Moves the clock and lets the routed frames arrive. */
  const advance = async (ms: number) => {
    c.clock.advance(ms);
    await c.flush();
  };
  return { c, tracker: tracker!, groups, advance };
}

const presence = (d: ClusterDevice, user?: string) =>
  d.transport
    .ofType("presence")
    .filter((p) => user === undefined || p.user === user)
    .map((p) => [p.status, p.lastSeen]);

const typing = (d: ClusterDevice) =>
  d.transport.ofType("typing").map((t) => [t.from, t.state, t.conversation]);

describe("Gateway presence: online and last seen pushed to subscribers", () => {
  it("pushes online on connect, last seen after the 10 s threshold, and the last activity on disconnect", async () => {
    const { c, advance } = world();
    const alice = await c.connect(0, "alice");
    await alice.send({ type: "presence.subscribe", users: ["bob"] });
    // Bob was never seen.
    expect(presence(alice)).toEqual([["offline", null]]);

    const bob = await c.connect(0, "bob");
    expect(presence(alice)).toEqual([
      ["offline", null],
      ["online", null],
    ]);
    // The threshold boundary: 9.9 s idle is still online, 10.1 s is last seen.
    await advance(9_900);
    expect(presence(alice)).toHaveLength(2);
    await advance(200);
    expect(presence(alice).at(-1)).toEqual(["offline", T0]);

    // User activity (an `active` frame). The change comes right after the last one, so it is coalesced:
    // it goes out once the 1 s interval since the previous update has passed.
    await bob.send({ type: "active" });
    const activeAt = T0 + 10_100;
    expect(presence(alice).at(-1)).toEqual(["offline", T0]);
    await advance(1_000);
    expect(presence(alice).at(-1)).toEqual(["online", null]);
    // A clean disconnect: last seen is the last activity, not the moment of the close.
    await advance(3_000);
    await bob.close(true);
    expect(presence(alice).at(-1)).toEqual(["offline", activeAt]);
    // Only real changes are sent: no duplicates.
    expect(presence(alice)).toHaveLength(5);
    await c.close();
  });

  it("stays online while one of two devices is active, and goes idle only when both are", async () => {
    const { c, advance } = world();
    const alice = await c.connect(0, "alice");
    const phone = await c.connect(0, "bob", "phone");
    const laptop = await c.connect(0, "bob", "laptop");
    await alice.send({ type: "presence.subscribe", users: ["bob"] });
    expect(presence(alice)).toEqual([["online", null]]);
    for (let i = 0; i < 3; i++) {
      await advance(6_000);
      await laptop.send({ type: "active" });
    }
    expect(presence(alice)).toEqual([["online", null]]);
    const lastLaptop = T0 + 18_000;
    await advance(10_000);
    expect(presence(alice)).toEqual([
      ["online", null],
      ["offline", lastLaptop],
    ]);
    expect(phone.transport.ofType("presence")).toEqual([]);
    await c.close();
  });

  it("an unclean drop with a quick reconnect does not flap; a drop past the grace window goes offline", async () => {
    const { c, advance } = world({ graceMs: 5_000 });
    const alice = await c.connect(0, "alice");
    let bob = await c.connect(0, "bob");
    await alice.send({ type: "presence.subscribe", users: ["bob"] });
    expect(presence(alice)).toEqual([["online", null]]);
    await advance(1_000);
    await bob.close(false);
    await advance(2_000);
    bob = await c.connect(0, "bob");
    await advance(1_000);
    expect(presence(alice)).toEqual([["online", null]]);

    const lastActive = c.clock.now();
    await bob.send({ type: "active" });
    await bob.close(false);
    await advance(4_900);
    expect(presence(alice)).toEqual([["online", null]]);
    await advance(200);
    expect(presence(alice)).toEqual([
      ["online", null],
      ["offline", lastActive],
    ]);
    await c.close();
  });

  it("stops pushing to a viewer who unsubscribed, and drops subscriptions when its last device goes", async () => {
    const { c, tracker } = world({ coalesceMs: 0 });
    const alice = await c.connect(0, "alice");
    await alice.send({ type: "presence.subscribe", users: ["bob", "carol"] });
    await alice.send({ type: "presence.unsubscribe", users: ["bob"] });
    alice.transport.clear();
    await c.connect(0, "bob");
    expect(presence(alice)).toEqual([]);
    await c.connect(0, "carol");
    expect(presence(alice, "carol")).toEqual([["online", null]]);
    await alice.close(true);
    expect(tracker.subscriptionsOf(userId("alice"))).toEqual([]);
    await c.close();
  });
});

describe("Gateway presence: privacy", () => {
  const settings = new Map<string, PresencePrivacySettings>([
    ["bob", { lastSeen: "nobody", online: "everyone" }],
    ["dave", { lastSeen: "everyone", online: "nobody" }],
  ]);
  const privacy = audiencePrivacy({
    settingsOf: (u) => settings.get(u),
    isContact: () => false,
  });

  it("hides last seen from viewers the subject excludes, and (reciprocal) from the subject too", async () => {
    const { c, advance } = world({ privacy, coalesceMs: 0 });
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(0, "bob");
    const carol = await c.connect(0, "carol");
    await alice.send({ type: "presence.subscribe", users: ["bob", "carol", "dave"] });
    await bob.send({ type: "presence.subscribe", users: ["carol"] });
    await c.connect(0, "dave");
    await advance(11_000);
    await carol.send({ type: "active" }); // carol online again, then idle again
    await advance(11_000);
    // Bob hides last seen: Alice sees him online, then offline with no time.
    expect(presence(alice, "bob")).toEqual([
      ["online", null],
      ["offline", null],
    ]);
    // Carol shares everything with Alice...
    expect(presence(alice, "carol").at(-1)).toEqual(["offline", T0 + 11_000]);
    // ...but Bob, who hides his own, cannot see hers.
    expect(presence(bob, "carol").at(-1)).toEqual(["offline", null]);
    expect(presence(bob, "carol").some(([, ls]) => ls !== null)).toBe(false);
    // Dave hides online too: he always looks offline, with no last seen.
    expect(presence(alice, "dave")).toEqual([["offline", null]]);
    await c.close();
  });
});

describe("Gateway presence: typing", () => {
  it("routes typing to the peer's devices and pauses it by itself after the timeout; nothing is stored", async () => {
    const { c, advance } = world({ typingTimeoutMs: 5_000 });
    const alice = await c.connect(0, "alice");
    const b1 = await c.connect(0, "bob", "phone");
    const b2 = await c.connect(0, "bob", "laptop");
    // Typing only within a shared chat: nothing goes out before a first message.
    await alice.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    for (const b of [b1, b2]) expect(typing(b)).toEqual([]);
    expect(alice.transport.ofType("error")).toEqual([]);
    await b1.send({ type: "send", id: "hi", to: { user: "alice" }, text: "hi" });
    const stored = c.messages.size;
    const queued = c.queueStore.size;
    await alice.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    for (const b of [b1, b2]) expect(typing(b)).toEqual([["alice", "composing", "dm:alice:bob"]]);
    expect(typing(alice)).toEqual([]);
    // A refresh within the timeout extends it without a new frame.
    await advance(4_000);
    await alice.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    await advance(4_000);
    for (const b of [b1, b2]) expect(typing(b)).toHaveLength(1);
    await advance(1_000);
    for (const b of [b1, b2]) {
      expect(typing(b)).toEqual([
        ["alice", "composing", "dm:alice:bob"],
        ["alice", "paused", "dm:alice:bob"],
      ]);
    }
    // An explicit pause goes out at once.
    await alice.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    await alice.send({ type: "typing", to: { user: "bob" }, state: "paused" });
    expect(
      typing(b1)
        .slice(2)
        .map(([, s]) => s),
    ).toEqual(["composing", "paused"]);
    // Volatile: never stored, never queued.
    expect(c.messages.size).toBe(stored);
    expect(c.queueStore.size).toBe(queued);
    // An offline peer gets nothing later.
    await b1.close();
    await b2.close();
    await alice.send({ type: "typing", to: { user: "bob" }, state: "composing" });
    const back = await c.connect(0, "bob", "phone");
    expect(typing(back)).toEqual([]);
    await c.close();
  });

  it("routes group typing to the other members and refuses a non-member", async () => {
    const { c, groups } = world();
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(0, "bob");
    const carol = await c.connect(0, "carol");
    await groups.create(userId("alice"), { id: "tg" as GroupId, members: [userId("bob")] });
    await c.flush();
    await alice.send({ type: "typing", to: { group: "tg" }, state: "composing" });
    expect(typing(bob)).toEqual([["alice", "composing", "g:tg"]]);
    expect(typing(alice)).toEqual([]);
    expect(typing(carol)).toEqual([]);
    await carol.send({ type: "typing", to: { group: "tg" }, state: "composing" });
    expect(carol.transport.ofType("error")).toMatchObject([{ code: "not_group_member" }]);
    expect(typing(bob)).toHaveLength(1);
    await c.close();
  });
});
