import assert from "node:assert/strict";
import { type GroupId, groupId, type UserId, userId } from "../../core/index.js";
import type { GroupRecord, GroupStore } from "../../groups/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

const u = (s: string): UserId => userId(s);

function group(id: string, members: string[], admins: string[] = members.slice(0, 1)): GroupRecord {
  return {
    id: groupId(id),
    name: `group ${id}`,
    createdBy: u(members[0] ?? "nobody"),
    createdAt: 1000,
    members: members.map(u),
    admins: admins.map(u),
    receipts: "none",
  };
}

/**
 * The behaviour every {@link GroupStore} must show, through its interface only. Run it
 * against a new implementation: `for (const c of groupStoreConformance(f)) it(c.name, c.run)`.
 */
export function groupStoreConformance(factory: PortFactory<GroupStore>): ConformanceCase[] {
  const c = (name: string, body: (store: GroupStore) => Promise<void>): ConformanceCase => ({
    name: `GroupStore: ${name}`,
    async run() {
      const store = await factory.create();
      try {
        await body(store);
      } finally {
        await factory.dispose?.(store);
      }
    },
  });
  const g1: GroupId = groupId("g1");
  return [
    c("create then get returns the record; a taken id is refused", async (s) => {
      assert.equal(await s.get(g1), undefined);
      assert.equal(await s.create(group("g1", ["alice", "bob"])), true);
      assert.deepEqual(await s.get(g1), group("g1", ["alice", "bob"]));
      assert.equal(await s.create(group("g1", ["carol"])), false);
      assert.deepEqual(await s.members(g1), [u("alice"), u("bob")]);
    }),
    c("put replaces whatever is there", async (s) => {
      await s.put(group("g1", ["alice"]));
      await s.put({ ...group("g1", ["bob", "carol"], ["carol"]), receipts: "aggregate" });
      const got = await s.get(g1);
      assert.deepEqual(got?.members, [u("bob"), u("carol")]);
      assert.deepEqual(got?.admins, [u("carol")]);
      assert.equal(got?.receipts, "aggregate");
    }),
    c("addMembers adds new users in order, skips members and duplicates", async (s) => {
      await s.create(group("g1", ["alice"]));
      const r = await s.addMembers(g1, [u("bob"), u("alice"), u("carol"), u("bob")], 10);
      assert.deepEqual(r, { status: "ok", added: [u("bob"), u("carol")] });
      assert.deepEqual(await s.members(g1), [u("alice"), u("bob"), u("carol")]);
      assert.equal(await s.isMember(g1, u("carol")), true);
      assert.equal(await s.isMember(g1, u("dave")), false);
    }),
    c("a record created or put with a user listed twice lists each member once", async (s) => {
      await s.create(group("g1", ["alice", "bob", "alice"], ["bob", "bob"]));
      assert.deepEqual(await s.members(g1), [u("alice"), u("bob")]);
      assert.deepEqual((await s.get(g1))?.admins, [u("bob")]);
      await s.put(group("g1", ["carol", "carol", "dave"]));
      assert.deepEqual(await s.members(g1), [u("carol"), u("dave")]);
    }),
    c("addMembers is all-or-none against the limit", async (s) => {
      await s.create(group("g1", ["alice", "bob"]));
      assert.deepEqual(await s.addMembers(g1, [u("carol"), u("dave")], 3), {
        status: "full",
        size: 2,
      });
      assert.deepEqual(await s.members(g1), [u("alice"), u("bob")]);
      assert.deepEqual(await s.addMembers(g1, [u("carol"), u("alice")], 3), {
        status: "ok",
        added: [u("carol")],
      });
      assert.deepEqual(await s.addMembers(g1, [u("alice")], 3), { status: "ok", added: [] });
    }),
    c("operations on a missing group report it", async (s) => {
      const none = groupId("none");
      assert.deepEqual(await s.addMembers(none, [u("a")], 10), { status: "not_found" });
      assert.equal(await s.removeMembers(none, [u("a")]), undefined);
      assert.equal(await s.setAdmin(none, u("a"), true), false);
      assert.equal(await s.update(none, { name: "x" }), false);
      assert.equal(await s.members(none), undefined);
      assert.equal(await s.isMember(none, u("a")), false);
      assert.equal(await s.delete(none), false);
    }),
    c("removeMembers returns who was removed and drops their admin flag", async (s) => {
      await s.create(group("g1", ["alice", "bob", "carol"], ["alice", "bob"]));
      assert.deepEqual(await s.removeMembers(g1, [u("bob"), u("zed")]), [u("bob")]);
      assert.deepEqual(await s.members(g1), [u("alice"), u("carol")]);
      assert.deepEqual((await s.get(g1))?.admins, [u("alice")]);
      await s.addMembers(g1, [u("bob")], 10);
      assert.deepEqual((await s.get(g1))?.admins, [u("alice")], "rejoining does not restore admin");
    }),
    c("setAdmin promotes and demotes members only", async (s) => {
      await s.create(group("g1", ["alice", "bob"]));
      assert.equal(await s.setAdmin(g1, u("bob"), true), true);
      assert.deepEqual([...((await s.get(g1))?.admins ?? [])].sort(), [u("alice"), u("bob")]);
      assert.equal(await s.setAdmin(g1, u("alice"), false), true);
      assert.deepEqual((await s.get(g1))?.admins, [u("bob")]);
      assert.equal(await s.setAdmin(g1, u("zed"), true), false);
      assert.deepEqual((await s.get(g1))?.admins, [u("bob")]);
    }),
    c("update changes name and receipts only", async (s) => {
      await s.create(group("g1", ["alice"]));
      assert.equal(await s.update(g1, { receipts: "per-member" }), true);
      assert.equal(await s.update(g1, { name: "renamed" }), true);
      assert.deepEqual(await s.get(g1), {
        ...group("g1", ["alice"]),
        name: "renamed",
        receipts: "per-member",
      });
    }),
    c(
      "a caller cannot change the group through a returned array (a copy, or frozen)",
      async (s) => {
        await s.create(group("g1", ["alice"]));
        const tryPush = (list: readonly UserId[]) => {
          try {
            (list as UserId[]).push(u("mallory"));
          } catch (e) {
            // A frozen array refuses the change.
            assert.ok(e instanceof TypeError);
          }
        };
        tryPush((await s.members(g1))!);
        const record = (await s.get(g1))!;
        tryPush(record.members);
        tryPush(record.admins);
        assert.deepEqual(await s.members(g1), [u("alice")]);
        assert.deepEqual((await s.get(g1))!.members, [u("alice")]);
        assert.deepEqual((await s.get(g1))!.admins, [u("alice")]);
      },
    ),
    c("a record read before a change does not show it (and one read after does)", async (s) => {
      await s.create(group("g1", ["alice"]));
      const before = (await s.get(g1))!;
      const membersBefore = (await s.members(g1))!;
      await s.addMembers(g1, [u("bob")], 10);
      await s.update(g1, { name: "renamed" });
      assert.deepEqual(before.members, [u("alice")]);
      assert.deepEqual(membersBefore, [u("alice")]);
      assert.equal(before.name, group("g1", ["alice"]).name);
      const after = (await s.get(g1))!;
      assert.deepEqual(after.members, [u("alice"), u("bob")]);
      assert.equal(after.name, "renamed");
      await s.setAdmin(g1, u("bob"), true);
      assert.deepEqual(after.admins, [u("alice")]);
      assert.deepEqual([...(await s.get(g1))!.admins].sort(), [u("alice"), u("bob")]);
      await s.removeMembers(g1, [u("alice")]);
      assert.deepEqual(await s.members(g1), [u("bob")]);
      assert.deepEqual(after.members, [u("alice"), u("bob")]);
    }),
    c("delete and ids", async (s) => {
      await s.create(group("g1", ["alice"]));
      await s.create(group("g2", ["bob"]));
      assert.deepEqual([...(await s.ids())].sort(), [groupId("g1"), groupId("g2")]);
      assert.equal(await s.delete(g1), true);
      assert.equal(await s.get(g1), undefined);
      assert.deepEqual(await s.ids(), [groupId("g2")]);
    }),
  ];
}
