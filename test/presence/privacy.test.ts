import { describe, expect, it } from "vitest";
import { type UserId, userId } from "../../src/core/index.js";
import {
  applyVisibility,
  audiencePrivacy,
  type PresencePrivacySettings,
  SHOW_ALL,
  SHOW_NOTHING,
  SHOW_ONLINE_ONLY,
} from "../../src/presence/index.js";

const alice = userId("alice");
const bob = userId("bob");
const carol = userId("carol");

function world(
  settings: Record<string, PresencePrivacySettings>,
  contacts: Record<string, string[]>,
) {
  return {
    settingsOf: (u: UserId) => settings[u],
    isContact: (owner: UserId, other: UserId) => contacts[owner]?.includes(other) ?? false,
  };
}

describe("audiencePrivacy", () => {
  it("everyone sees everyone by default", () => {
    const hook = audiencePrivacy(world({}, {}));
    expect(hook(alice, bob)).toBe(SHOW_ALL);
  });

  it("nobody hides last seen from everyone but the user themself", () => {
    const hook = audiencePrivacy(world({ bob: { lastSeen: "nobody", online: "everyone" } }, {}));
    expect(hook(alice, bob)).toBe(SHOW_ONLINE_ONLY);
    expect(hook(bob, bob)).toBe(SHOW_ALL);
  });

  it("contacts shows last seen to the subject's contacts only", () => {
    const hook = audiencePrivacy(
      world({ bob: { lastSeen: "contacts", online: "contacts" } }, { bob: ["alice"] }),
    );
    expect(hook(alice, bob)).toBe(SHOW_ALL);
    expect(hook(carol, bob)).toBe(SHOW_NOTHING);
  });

  it("reciprocal: who hides last seen cannot see others'", () => {
    const hook = audiencePrivacy(world({ alice: { lastSeen: "nobody", online: "everyone" } }, {}));
    expect(hook(alice, bob)).toBe(SHOW_ONLINE_ONLY);
    expect(hook(bob, alice)).toBe(SHOW_ONLINE_ONLY);
    // contacts-only viewer sees a non-contact's last seen no more
    const hook2 = audiencePrivacy(
      world({ alice: { lastSeen: "contacts", online: "everyone" } }, { alice: ["bob"] }),
    );
    expect(hook2(alice, bob)).toBe(SHOW_ALL);
    expect(hook2(alice, carol)).toBe(SHOW_ONLINE_ONLY);
  });

  it("reciprocity can be turned off", () => {
    const hook = audiencePrivacy({
      ...world({ alice: { lastSeen: "nobody", online: "nobody" } }, {}),
      reciprocal: false,
    });
    expect(hook(alice, bob)).toBe(SHOW_ALL);
    expect(hook(bob, alice)).toBe(SHOW_NOTHING);
  });
});

describe("applyVisibility", () => {
  const off = { status: "offline", lastSeen: 42 } as const;
  const on = { status: "online", lastSeen: null } as const;
  it("hides last seen, or everything", () => {
    expect(applyVisibility(off, SHOW_ALL)).toBe(off);
    expect(applyVisibility(off, SHOW_ONLINE_ONLY)).toEqual({ status: "offline", lastSeen: null });
    expect(applyVisibility(on, SHOW_ONLINE_ONLY)).toBe(on);
    expect(applyVisibility(on, SHOW_NOTHING)).toEqual({ status: "offline", lastSeen: null });
  });
});
