import { describe, expect, it } from "vitest";
import { deviceId, groupId, sequentialIds, userId } from "../../src/core/index.js";
import { GroupService } from "../../src/groups/index.js";
import { type ClusterDevice, cluster } from "../support/cluster.js";

const u = userId;
/** The texts of the (non-system) group messages a device got, in order. */
const texts = (d: ClusterDevice) =>
  d.transport
    .ofType("message")
    .filter((m) => !m.system)
    .map((m) => m.text);

/**
 * A router keeps a busy group's recipient list while the members and the device registry
 * stay the same, and the queue keeps its messages once for the whole list (a roster). Each
 * change must show in the very next message.
 */
describe("Router: a group's recipient list follows every change", () => {
  it("linked and unlinked devices, added and removed members, the sender's other devices", async () => {
    let service!: GroupService;
    const c = cluster(2, {
      router: (ctx) => {
        service ??= new GroupService({ clock: ctx.clock, ids: sequentialIds("g") });
        return { groups: service };
      },
    });
    const names = Array.from({ length: 11 }, (_, i) => `m${i}`);
    const members: ClusterDevice[] = [];
    for (const [i, name] of names.entries()) {
      members.push(await c.connect(i % 2, name, "d1", { autoAck: true }));
    }
    const [alice, bob] = members as [ClusterDevice, ClusterDevice];
    const g = await service.create(u("m0"), {
      id: groupId("big"),
      // m10 joins later.
      members: names.slice(1, 10).map((n) => u(n)),
    });
    await c.flush();
    const post = async (from: ClusterDevice, text: string) => {
      await from.send({ type: "send", id: text, to: { group: g.id }, text });
      expect(from.transport.ofType("error")).toEqual([]);
    };

    await post(alice, "one");
    await post(alice, "two");
    for (const d of members.slice(1, 10)) expect(texts(d)).toEqual(["one", "two"]);

    // Bob links a second device: it gets the next message.
    const bob2 = await c.connect(1, "m1", "d2", { autoAck: true });
    await post(alice, "three");
    expect(texts(bob)).toEqual(["one", "two", "three"]);
    expect(texts(bob2)).toEqual(["three"]);

    // Unlinked (still connected): it gets nothing more.
    c.devices.unlink(u("m1"), deviceId("d2"));
    await post(alice, "four");
    expect(texts(bob2)).toEqual(["three"]);
    expect(texts(bob)).toEqual(["one", "two", "three", "four"]);

    // A member removed and one added.
    await service.removeMembers(g.id, u("m0"), [u("m9")]);
    await service.addMembers(g.id, u("m0"), [u("m10")]);
    await post(alice, "five");
    expect(texts(members[9]!)).toEqual(["one", "two", "three", "four"]);
    expect(texts(members[10]!)).toEqual(["five"]);

    // The sender's other device gets a copy; the sending device does not.
    const alice2 = await c.connect(1, "m0", "d2", { autoAck: true });
    await post(alice, "six");
    await post(alice2, "seven");
    expect(texts(alice2)).toEqual(["six"]);
    expect(texts(alice)).toEqual(["seven"]);
    // Another member posts to the same members: its own list, alice's devices included.
    await post(bob, "eight");
    expect(texts(alice)).toEqual(["seven", "eight"]);
    expect(texts(alice2)).toEqual(["six", "eight"]);
    for (const d of members.slice(2, 9)) {
      expect(texts(d)).toEqual(["one", "two", "three", "four", "five", "six", "seven", "eight"]);
    }
    expect(texts(bob)).toEqual(["one", "two", "three", "four", "five", "six", "seven"]);
    await c.close();
  });
});
