import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ManualClock, sequentialIds, type UserId, userId } from "../../src/core/index.js";
import { GroupService, type GroupSystemEvent } from "../../src/groups/index.js";

const user = fc.integer({ min: 0, max: 7 }).map((i) => userId(`u${i}`));
const op = fc.oneof(
  fc.record({
    kind: fc.constant("add" as const),
    actor: user,
    users: fc.array(user, { maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant("remove" as const),
    actor: user,
    users: fc.array(user, { maxLength: 3 }),
  }),
  fc.record({ kind: fc.constant("promote" as const), actor: user, user }),
  fc.record({ kind: fc.constant("demote" as const), actor: user, user }),
  fc.record({ kind: fc.constant("leave" as const), user }),
);

describe("GroupService invariants under random operations", () => {
  it("admins are members, size <= max, a non-empty group has an admin, events match the member list", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 40 }),
        fc.integer({ min: 2, max: 6 }),
        async (ops, max) => {
          const groups = new GroupService({
            maxSize: max,
            clock: new ManualClock(),
            ids: sequentialIds(),
          });
          const events: GroupSystemEvent[] = [];
          groups.on("system", (e) => events.push(e));
          const g = await groups.create(userId("u0"));
          // Replay the events to rebuild the member set: it must equal the stored one.
          const replayed = new Set<UserId>();
          for (const o of ops) {
            try {
              if (o.kind === "add") await groups.addMembers(g.id, o.actor, o.users);
              else if (o.kind === "remove") await groups.removeMembers(g.id, o.actor, o.users);
              else if (o.kind === "promote") await groups.promote(g.id, o.actor, o.user);
              else if (o.kind === "demote") await groups.demote(g.id, o.actor, o.user);
              else await groups.leave(g.id, o.user);
            } catch (e) {
              expect(["not_group_admin", "not_group_member", "group_full"]).toContain(
                (e as { code: string }).code,
              );
            }
            const rec = await groups.get(g.id);
            expect(rec.members.length).toBeLessThanOrEqual(max);
            expect(new Set(rec.members).size).toBe(rec.members.length);
            for (const a of rec.admins) expect(rec.members).toContain(a);
            if (rec.members.length > 0) expect(rec.admins.length).toBeGreaterThan(0);
          }
          for (const { event } of events) {
            for (const m of event.members) {
              if (event.event === "group.created" || event.event === "member.added")
                replayed.add(m);
              else replayed.delete(m);
            }
          }
          expect([...replayed].sort()).toEqual([...(await groups.members(g.id))].sort());
        },
      ),
      { numRuns: 150 },
    );
  });
});
