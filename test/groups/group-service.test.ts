import { describe, expect, it } from "vitest";
import {
  type GroupId,
  ManualClock,
  type RelayError,
  sequentialIds,
  type UserId,
  userId,
} from "../../src/core/index.js";
import { GroupService, type GroupSystemEvent } from "../../src/groups/index.js";

const [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(userId) as [
  UserId,
  UserId,
  UserId,
  UserId,
];

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as RelayError).code;
  }
  return "resolved";
}

function setup(maxSize?: number) {
  const clock = new ManualClock(5000);
  const groups = new GroupService({
    clock,
    ids: sequentialIds("t."),
    ...(maxSize === undefined ? {} : { maxSize }),
  });
  const events: GroupSystemEvent[] = [];
  groups.on("system", (e) => events.push(e));
  return { groups, events, clock };
}

describe("GroupService", () => {
  it("validates options", () => {
    for (const maxSize of [1, 0, 2.5, -3]) {
      expect(() => new GroupService({ maxSize })).toThrow(
        expect.objectContaining({ code: "invalid_option" }),
      );
    }
    expect(new GroupService().maxSize).toBe(1024);
  });

  it("creates a group: creator is member and admin, receipts default to none", async () => {
    const { groups, events } = setup();
    const g = await groups.create(alice, { name: "climbing", members: [bob, alice, carol] });
    expect(g).toEqual({
      id: "gt.1",
      name: "climbing",
      createdBy: alice,
      createdAt: 5000,
      members: [alice, bob, carol],
      admins: [alice],
      receipts: "none",
    });
    expect(await groups.get(g.id)).toEqual(g);
    expect(await groups.members(g.id)).toEqual([alice, bob, carol]);
    expect(await groups.isMember(g.id, bob)).toBe(true);
    expect(await groups.isMember(g.id, dave)).toBe(false);
    expect(events).toEqual([
      {
        groupId: g.id,
        event: { event: "group.created", actor: alice, members: [alice, bob, carol] },
      },
    ]);
  });

  it("refuses a taken id and a bad receipt policy", async () => {
    const { groups } = setup();
    const id = "fixed" as GroupId;
    await groups.create(alice, { id });
    expect(await code(groups.create(bob, { id }))).toBe("duplicate");
    expect(await code(groups.create(bob, { receipts: "loud" as never }))).toBe("invalid_field");
  });

  it("admins add and remove; others get not_group_admin; system events follow", async () => {
    const { groups, events } = setup();
    const g = await groups.create(alice, { members: [bob] });
    events.length = 0;
    expect(await groups.addMembers(g.id, alice, [carol, bob])).toEqual([carol]);
    expect(await code(groups.addMembers(g.id, bob, [dave]))).toBe("not_group_admin");
    expect(await code(groups.addMembers(g.id, dave, [dave]))).toBe("not_group_admin");
    expect(await groups.removeMembers(g.id, alice, [carol, dave])).toEqual([carol]);
    expect(await code(groups.removeMembers(g.id, bob, [alice]))).toBe("not_group_admin");
    expect(await groups.addMembers(g.id, alice, [bob])).toEqual([]); // no-op, no event
    expect(events.map((e) => e.event)).toEqual([
      { event: "member.added", actor: alice, members: [carol] },
      { event: "member.removed", actor: alice, members: [carol] },
    ]);
    expect(await groups.members(g.id)).toEqual([alice, bob]);
  });

  it("promote and demote", async () => {
    const { groups } = setup();
    const g = await groups.create(alice, { members: [bob, carol] });
    expect(await code(groups.promote(g.id, bob, carol))).toBe("not_group_admin");
    expect(await code(groups.promote(g.id, alice, dave))).toBe("not_group_member");
    await groups.promote(g.id, alice, bob);
    await groups.addMembers(g.id, bob, [dave]); // bob may now add
    await groups.demote(g.id, bob, alice);
    expect((await groups.get(g.id)).admins).toEqual([bob]);
    await groups.demote(g.id, bob, bob); // the last admin stays
    expect((await groups.get(g.id)).admins).toEqual([bob]);
    expect(await code(groups.demote(g.id, bob, userId("zed")))).toBe("not_group_member");
  });

  it("the size limit holds, all or none", async () => {
    const { groups } = setup(3);
    expect(await code(groups.create(alice, { members: [bob, carol, dave] }))).toBe("group_full");
    const g = await groups.create(alice, { members: [bob] });
    expect(await code(groups.addMembers(g.id, alice, [carol, dave]))).toBe("group_full");
    expect(await groups.members(g.id)).toEqual([alice, bob]);
    await groups.addMembers(g.id, alice, [carol]);
    expect(await code(groups.addMembers(g.id, alice, [dave]))).toBe("group_full");
    await groups.leave(g.id, bob);
    expect(await groups.addMembers(g.id, alice, [dave])).toEqual([dave]);
  });

  it("the default limit is 1,024 members", async () => {
    const { groups } = setup();
    const many = Array.from({ length: 1023 }, (_, i) => userId(`u${i}`));
    const g = await groups.create(alice, { members: many });
    expect((await groups.members(g.id)).length).toBe(1024);
    expect(await code(groups.addMembers(g.id, alice, [bob]))).toBe("group_full");
  });

  it("leave: members only; the last admin leaving hands admin to the oldest member", async () => {
    const { groups, events } = setup();
    const g = await groups.create(alice, { members: [bob, carol] });
    events.length = 0;
    expect(await code(groups.leave(g.id, dave))).toBe("not_group_member");
    await groups.leave(g.id, alice);
    expect(await groups.get(g.id)).toMatchObject({ members: [bob, carol], admins: [bob] });
    expect(events).toEqual([
      { groupId: g.id, event: { event: "member.left", actor: alice, members: [alice] } },
    ]);
  });

  it("only members may post; unknown groups are reported", async () => {
    const { groups } = setup();
    const g = await groups.create(alice, { members: [bob] });
    await groups.assertMember(g.id, bob);
    expect(await code(groups.assertMember(g.id, dave))).toBe("not_group_member");
    const none = "none" as GroupId;
    expect(await code(groups.assertMember(none, alice))).toBe("group_not_found");
    expect(await code(groups.members(none))).toBe("group_not_found");
    expect(await code(groups.get(none))).toBe("group_not_found");
    expect(await code(groups.addMembers(none, alice, [bob]))).toBe("group_not_found");
    expect(await code(groups.leave(none, alice))).toBe("group_not_found");
    expect(await groups.isMember(none, alice)).toBe(false);
  });

  it("the receipt policy is stored per group, set by admins", async () => {
    const { groups } = setup();
    const g = await groups.create(alice, { members: [bob], receipts: "aggregate" });
    expect((await groups.get(g.id)).receipts).toBe("aggregate");
    expect(await code(groups.setReceipts(g.id, bob, "per-member"))).toBe("not_group_admin");
    await groups.setReceipts(g.id, alice, "per-member");
    expect((await groups.get(g.id)).receipts).toBe("per-member");
    expect(await code(groups.setReceipts(g.id, alice, "all" as never))).toBe("invalid_field");
  });
});
