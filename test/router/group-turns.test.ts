import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { groupId, sequentialIds, userId } from "../../src/core/index.js";
import { GroupService } from "../../src/groups/index.js";
import { type ClusterDevice, cluster } from "../support/cluster.js";

/**
 * A 12-member group on 3 nodes (per-node queues over one shared store, so group fan-outs go
 * through rosters), members posting in turn while devices drop and come back on other nodes
 * and time passes: every member device ends with every message of the others, never its
 * own, and no sender is told `failed`.
 */
describe("Router: a group whose members post in turn, devices coming and going", () => {
  it("every device gets every other member's message; none gets its own; nothing fails", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            {
              weight: 6,
              arbitrary: fc.record({ kind: fc.constant("post" as const), by: fc.nat(11) }),
            },
            {
              weight: 2,
              arbitrary: fc.record({ kind: fc.constant("drop" as const), who: fc.nat(11) }),
            },
            {
              weight: 2,
              arbitrary: fc.record({
                kind: fc.constant("back" as const),
                who: fc.nat(11),
                node: fc.nat(2),
              }),
            },
            {
              weight: 1,
              arbitrary: fc.record({
                kind: fc.constant("wait" as const),
                ms: fc.constantFrom(10, 1000, 5000),
              }),
            },
          ),
          { maxLength: 40 },
        ),
        async (ops) => {
          let service!: GroupService;
          const c = cluster(3, {
            router: (ctx) => {
              service ??= new GroupService({ clock: ctx.clock, ids: sequentialIds("g") });
              return { groups: service };
            },
          });
          const names = Array.from({ length: 12 }, (_, i) => `m${i}`);
          const devices: (ClusterDevice | undefined)[] = [];
          /** Every connection each member's device had. */
          const conns = names.map(() => [] as ClusterDevice[]);
          const watch = (i: number, d: ClusterDevice) => conns[i]!.push(d);
          for (const [i, name] of names.entries()) {
            const d = await c.connect(i % 3, name, "d1", { autoAck: true });
            watch(i, d);
            devices.push(d);
          }
          const g = await service.create(userId("m0"), {
            id: groupId("turns"),
            members: names.slice(1).map((n) => userId(n)),
          });
          await c.flush();
          /** Message ids by the member who sent them. */
          const sent = names.map(() => [] as string[]);
          let n = 0;
          for (const op of ops) {
            if (op.kind === "post") {
              const d = devices[op.by];
              if (!d) continue;
              const id = `c${n++}`;
              await d.send({ type: "send", id, to: { group: g.id }, text: id });
              const tick = d.transport
                .ofType("receipt")
                .find((r) => r.status === "sent" && r.clientId === id);
              expect(tick, `sent tick of ${id}`).toBeDefined();
              if (tick?.status === "sent") sent[op.by]!.push(tick.id);
            } else if (op.kind === "drop") {
              await devices[op.who]?.close(false);
              devices[op.who] = undefined;
            } else if (op.kind === "back") {
              if (devices[op.who]) continue;
              const d = await c.connect(op.node, names[op.who]!, "d1", { autoAck: true });
              watch(op.who, d);
              devices[op.who] = d;
            } else {
              c.clock.advance(op.ms);
              await c.flush();
            }
          }
          // Everyone comes back; retries run their course.
          for (let i = 0; i < names.length; i++) {
            if (devices[i]) continue;
            const d = await c.connect(i % 3, names[i]!, "d1", { autoAck: true });
            watch(i, d);
            devices[i] = d;
          }
          for (let k = 0; k < 8; k++) {
            c.clock.advance(60_000);
            await c.flush();
          }
          for (let i = 0; i < names.length; i++) {
            const got = new Set(
              conns[i]!.flatMap((d) =>
                d.transport
                  .ofType("message")
                  .filter((m) => !m.system)
                  .map((m) => m.id as string),
              ),
            );
            const others = sent.filter((_, j) => j !== i).flat();
            for (const id of others) expect(got.has(id), `${names[i]} got ${id}`).toBe(true);
            for (const id of sent[i]!)
              expect(got.has(id), `${names[i]} got its own ${id}`).toBe(false);
            const failed = conns[i]!.flatMap((d) =>
              d.transport.ofType("receipt").filter((r) => r.status === "failed"),
            );
            expect(failed).toEqual([]);
          }
          await c.close();
        },
      ),
      { numRuns: Number(process.env.GROUP_RUNS ?? 25) },
    );
  });
});
