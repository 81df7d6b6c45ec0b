import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type GroupId, type RelayError, sequentialIds, type UserId } from "../../src/core/index.js";
import { GroupService } from "../../src/groups/index.js";
import { parseServerFrame } from "../../src/protocol/index.js";

async function refusal(p: Promise<unknown>): Promise<[string, string | undefined] | "resolved"> {
  try {
    await p;
  } catch (e) {
    return [(e as RelayError).code, (e as RelayError).path];
  }
  return "resolved";
}

const alice = "alice" as UserId;
const bob = "bob" as UserId;

/** A message frame the server would send to a member of the group: its own client's check. */
function clientAccepts(group: string, from: string): boolean {
  return parseServerFrame({
    type: "message",
    id: "m1",
    clientId: "c1",
    from,
    fromDevice: "d1",
    to: { group },
    conversation: "conv1",
    seq: 1,
    ts: 0,
    text: "hi",
  }).ok;
}

describe("GroupService: ids follow the protocol's id rule", () => {
  it("refuses at creation a group id, creator or member the protocol would refuse", async () => {
    const groups = new GroupService({ ids: sequentialIds("g.") });
    const long = "x".repeat(300);
    expect(await refusal(groups.create(alice, { id: "bad id" as GroupId }))).toEqual([
      "invalid_field",
      "id",
    ]);
    expect(await refusal(groups.create(alice, { id: long as GroupId }))).toEqual([
      "invalid_field",
      "id",
    ]);
    expect(await refusal(groups.create(alice, { members: [bob, "bad id" as UserId] }))).toEqual([
      "invalid_field",
      "members.1",
    ]);
    expect(await refusal(groups.create("bad id" as UserId))).toEqual(["invalid_field", "creator"]);
    expect(await refusal(groups.get("bad id" as GroupId))).toEqual(["group_not_found", undefined]);
  });

  it("refuses adding a member the protocol would refuse, and adds nobody", async () => {
    const groups = new GroupService({ ids: sequentialIds("g.") });
    const g = await groups.create(alice, { members: [bob] });
    expect(
      await refusal(groups.addMembers(g.id, alice, ["carol" as UserId, "" as UserId])),
    ).toEqual(["invalid_field", "userIds.1"]);
    expect(await groups.members(g.id)).toEqual([alice, bob]);
  });

  it("follows a deployment's own id pattern", async () => {
    const groups = new GroupService({ idPattern: /^[a-z]{1,8}$/ });
    expect(await refusal(groups.create(alice, { id: "g.1" as GroupId }))).toEqual([
      "invalid_field",
      "id",
    ]);
    expect((await groups.create(alice, { id: "club" as GroupId })).id).toBe("club");
    expect(() => new GroupService({ idPattern: "x" as never })).toThrow(/idPattern/);
  });

  it("every group it accepts is one its own clients accept frames for (fast-check)", async () => {
    const id = fc.oneof(
      fc.string({ minLength: 0, maxLength: 140 }),
      fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,130}$/),
    );
    await fc.assert(
      fc.asyncProperty(id, fc.array(id, { maxLength: 3 }), async (groupId, members) => {
        const groups = new GroupService();
        const r = await refusal(
          groups.create(alice, { id: groupId as GroupId, members: members as UserId[] }),
        );
        if (r === "resolved") {
          for (const m of await groups.members(groupId as GroupId)) {
            expect(clientAccepts(groupId, m)).toBe(true);
          }
        } else {
          expect(r[0]).toBe("invalid_field");
        }
      }),
      { numRuns: 300 },
    );
  });
});
