import { describe, expect, it } from "vitest";
import {
  deviceId,
  type GroupId,
  groupId,
  type MessageId,
  type NodeId,
  nodeId,
  type RelayError,
  sequentialIds,
  type UserId,
  userId,
} from "../../src/core/index.js";
import {
  GroupDirectory,
  type GroupRequest,
  type GroupResponse,
  GroupService,
  GroupSharder,
} from "../../src/groups/index.js";
import { HashRing } from "../../src/sharding/index.js";
import { type Cluster, type ClusterDevice, type ClusterNode, cluster } from "../support/cluster.js";

const u = userId;
const msgs = (d: ClusterDevice) => d.transport.ofType("message");
const ringOf = (ids: readonly NodeId[]) => new HashRing<NodeId>({ vnodes: 64, nodes: [...ids] });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as RelayError).code;
  }
  return "resolved";
}

/**
 * `n` nodes, each with its own GroupService (own store) behind a GroupDirectory that
 * forwards to the ring's owner over the router control channel; each owner's service posts
 * its membership changes through its router.
 */
function sharded(n: number, opts: { maxSize?: number; sharedQueue?: boolean } = {}) {
  let ring = ringOf(Array.from({ length: n }, (_, i) => nodeId(`n${i + 1}`)));
  const parts: { service: GroupService; directory: GroupDirectory }[] = [];
  const systemPosts: Promise<unknown>[] = [];
  const c: Cluster = cluster(n, {
    sharedQueue: opts.sharedQueue ?? false,
    router: (ctx) => {
      const service = new GroupService({
        clock: ctx.clock,
        ids: sequentialIds(`${ctx.id}.`),
        ...(opts.maxSize === undefined ? {} : { maxSize: opts.maxSize }),
      });
      const directory = new GroupDirectory({
        sharder: new GroupSharder({ ring: ring.clone(), nodeId: ctx.id }),
        service,
        ids: sequentialIds(`${ctx.id}.`),
        forward: async (owner, req) =>
          (await c.nodes[ctx.index]!.router.request(owner, "groups", req)) as GroupResponse,
      });
      parts[ctx.index] = { service, directory };
      return { groups: directory };
    },
  });
  const wire = (node: ClusterNode) => {
    const { service, directory } = parts[node.index]!;
    node.router.handle("groups", (req) => directory.handle(req as GroupRequest));
    service.on("system", ({ groupId: g, event }) => {
      systemPosts.push(node.router.postSystem(g, event));
    });
  };
  for (const node of c.nodes) wire(node);
  return {
    c,
    parts,
    systemPosts,
    dir: (i: number) => parts[i]!.directory,
    get ring() {
      return ring;
    },
    /** A new node joins and takes the next ring (the others switch when the test says so). */
    join(): { node: ClusterNode; next: HashRing<NodeId> } {
      const next = ring.clone();
      next.add(nodeId(`n${c.nodes.length + 1}`));
      // The newcomer starts on the current ring and switches like the others, so its
      // directory knows the previous owners to pull groups from (built straight on the new
      // ring, it would answer `group_not_found` for groups still in transit).
      const node = c.addNode();
      ring = next;
      parts[node.index]!.directory.setRing(next.clone());
      wire(node);
      return { node, next };
    },
  };
}

describe("Router groups: membership rules", () => {
  it("members post and every member device gets it; a non-member is refused with an error frame and nothing is delivered", async () => {
    const w = sharded(2);
    const { c } = w;
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const carol = await c.connect(0, "carol");
    const g = await w.dir(1).create(u("alice"), { id: groupId("climbing"), members: [u("bob")] });
    await c.flush();
    for (const d of [alice, bob, carol]) d.transport.clear();

    await bob.send({ type: "send", id: "b1", to: { group: g.id }, text: "hi all" });
    expect(bob.transport.ofType("receipt")).toMatchObject([{ status: "sent", clientId: "b1" }]);
    expect(msgs(alice).map((m) => m.text)).toEqual(["hi all"]);

    const packetsBefore = c.bus.log.filter((p) => p.packet.kind === "frames").length;
    const storedBefore = c.messages.size;
    await carol.send({ type: "send", id: "k1", to: { group: g.id }, text: "let me in" });
    expect(carol.transport.ofType("error")).toMatchObject([
      { code: "not_group_member", ref: "k1", path: "to.group" },
    ]);
    expect(carol.transport.ofType("receipt")).toEqual([]);
    expect(msgs(alice)).toHaveLength(1);
    expect(msgs(bob)).toHaveLength(0);
    expect(c.bus.log.filter((p) => p.packet.kind === "frames").length).toBe(packetsBefore);
    // Nothing was stored or queued for the refused send.
    expect(c.messages.size).toBe(storedBefore);

    // Typing into a group one is not in is refused the same way.
    await carol.send({ type: "typing", to: { group: g.id }, state: "composing" });
    expect(carol.transport.ofType("error").at(-1)).toMatchObject({ code: "not_group_member" });
    expect(alice.transport.ofType("typing")).toEqual([]);
    await c.close();
  });

  it("an unknown group is refused with an error frame", async () => {
    const w = sharded(2);
    const alice = await w.c.connect(0, "alice");
    await alice.send({ type: "send", id: "a1", to: { group: "nope" }, text: "x" });
    expect(alice.transport.ofType("error")).toMatchObject([{ code: "group_not_found", ref: "a1" }]);
    await w.c.close();
  });

  it("membership changes take effect at once: added members may post, removed and departed ones may not", async () => {
    const w = sharded(3);
    const { c } = w;
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const carol = await c.connect(2, "carol");
    const g = await w.dir(2).create(u("alice"), { id: groupId("g-rules"), members: [u("bob")] });
    // Only admins add; the error code crosses nodes.
    expect(await code(w.dir(0).addMembers(g.id, u("bob"), [u("carol")]))).toBe("not_group_admin");
    expect(await w.dir(0).addMembers(g.id, u("alice"), [u("carol")])).toEqual([u("carol")]);
    await carol.send({ type: "send", id: "k1", to: { group: g.id }, text: "thanks" });
    expect(carol.transport.ofType("error")).toEqual([]);
    expect(
      msgs(bob)
        .filter((m) => !m.system)
        .map((m) => m.text),
    ).toEqual(["thanks"]);

    await w.dir(1).removeMembers(g.id, u("alice"), [u("carol")]);
    await w.dir(1).leave(g.id, u("bob"));
    for (const [d, id] of [
      [carol, "k2"],
      [bob, "b2"],
    ] as const) {
      await d.send({ type: "send", id, to: { group: g.id }, text: "still here?" });
      expect(d.transport.ofType("error").at(-1)).toMatchObject({
        code: "not_group_member",
        ref: id,
      });
    }
    expect(msgs(alice).filter((m) => m.text === "still here?")).toEqual([]);
    await c.close();
  });

  it("the size limit holds through the directory", async () => {
    const w = sharded(2, { maxSize: 3 });
    const g = await w.dir(0).create(u("a"), { id: groupId("small"), members: [u("b"), u("c")] });
    expect(await code(w.dir(1).addMembers(g.id, u("a"), [u("d")]))).toBe("group_full");
    expect(await code(w.dir(1).create(u("a"), { members: [u("b"), u("c"), u("d")] }))).toBe(
      "group_full",
    );
    await w.c.close();
  });
});

describe("Router groups: fan-out across 3 in-process nodes", () => {
  it("reaches every member device exactly once, with one bus packet per remote node per message", async () => {
    const w = sharded(3);
    const { c } = w;
    // 12 members, some with two devices, spread over the 3 nodes; the sender has a second device.
    const devices: ClusterDevice[] = [];
    const members: UserId[] = [];
    for (let i = 0; i < 12; i++) {
      const user = `m${i}`;
      members.push(u(user));
      devices.push(await c.connect(i % 3, user, "phone"));
      if (i % 4 === 0) devices.push(await c.connect((i + 1) % 3, user, "laptop"));
    }
    const outsider = await c.connect(1, "outsider");
    const g = await w.dir(0).create(members[0]!, { id: groupId("fan"), members });
    await c.flush();
    for (const d of [...devices, outsider]) d.transport.clear();
    const sender = devices[0]!; // m0/phone on n1; m0/laptop is on n2
    const before = c.bus.log.length;

    const N = 5;
    for (let i = 0; i < N; i++) {
      await sender.send({ type: "send", id: `c${i}`, to: { group: g.id }, text: `t${i}` });
    }
    expect(sender.transport.ofType("receipt").map((r) => r.status)).toEqual(Array(N).fill("sent"));
    const ids = sender.transport.ofType("receipt").map((r) => ("id" in r ? r.id : "") as MessageId);
    for (const d of devices) {
      if (d === sender) {
        expect(msgs(d)).toEqual([]);
        continue;
      }
      // Exactly once each, in order.
      expect(msgs(d).map((m) => m.id)).toEqual(ids);
    }
    expect(msgs(outsider)).toEqual([]);

    // One packet per (remote node, message), carrying every recipient session on that node.
    const packets = c.bus.log
      .slice(before)
      .filter((p) => p.packet.kind === "frames" && p.packet.frame.type === "message");
    const remote = new Set(
      devices.filter((d) => d.node.id !== sender.node.id).map((d) => d.node.id),
    );
    expect(packets).toHaveLength(N * remote.size);
    for (const id of ids) {
      const mine = packets.filter((p) => (p.packet as { frame: { id: string } }).frame.id === id);
      expect(mine.map((p) => p.to).sort()).toEqual([...remote].sort());
      for (const p of mine) {
        const expected = devices
          .filter((d) => d.node.id === p.to && d !== sender)
          .map((d) => d.conn.session.sessionId)
          .sort();
        expect([...(p.packet as { to: readonly string[] }).to].sort()).toEqual(expected);
      }
    }
    await c.close();
  });

  it("puts group messages in a lower lane than 1:1 ones: normal up to 256 members, low beyond", async () => {
    const w = sharded(2);
    const { c } = w;
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const others = Array.from({ length: 298 }, (_, i) => u(`x${i}`));
    for (const x of others) c.devices.linkSync(x, deviceId("d1"));
    await w.dir(0).create(u("alice"), { id: groupId("small-g"), members: [u("bob")] });
    await w.dir(0).create(u("alice"), { id: groupId("big-g"), members: [u("bob"), ...others] });
    await c.flush();
    bob.transport.clear();
    await alice.send({ type: "send", id: "p1", to: { user: "bob" }, text: "dm" });
    await alice.send({ type: "send", id: "p2", to: { group: "small-g" }, text: "small" });
    await alice.send({ type: "send", id: "p3", to: { group: "big-g" }, text: "big" });
    // A client may ask for a lower lane, never a higher one.
    await alice.send({
      type: "send",
      id: "p4",
      to: { group: "small-g" },
      text: "asks low",
      priority: "low",
    });
    await alice.send({
      type: "send",
      id: "p5",
      to: { group: "big-g" },
      text: "asks high",
      priority: "high",
    });
    expect(msgs(bob).map((m) => [m.text, m.priority])).toEqual([
      ["dm", "high"],
      ["small", "normal"],
      ["big", "low"],
      ["asks low", "low"],
      ["asks high", "low"],
    ]);
    // The offline members' devices hold it in the queue store.
    expect(c.queueStore.size).toBeGreaterThanOrEqual(2 * others.length);
    await c.close();
  });

  it("an offline member device gets the group message when it comes back", async () => {
    const w = sharded(3);
    const { c } = w;
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const g = await w.dir(0).create(u("alice"), { id: groupId("later"), members: [u("bob")] });
    await bob.close();
    await alice.send({ type: "send", id: "a1", to: { group: g.id }, text: "while you were out" });
    expect(alice.transport.ofType("receipt")).toMatchObject([{ status: "sent" }]);
    // Back on the sender's node: that node's queue holds the entry.
    const again = await c.connect(0, "bob");
    expect(msgs(again).map((m) => m.text)).toContain("while you were out");
    await c.close();
  });

  // With `sharedStore: true` a node loads a connecting device's entries from the store
  // first, so entries queued by another node reach it.
  it("an offline member device that comes back on another node gets the group message", async () => {
    const w = sharded(3);
    const { c } = w;
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const g = await w.dir(0).create(u("alice"), { id: groupId("later2"), members: [u("bob")] });
    await bob.close();
    await alice.send({ type: "send", id: "a1", to: { group: g.id }, text: "while you were out" });
    const again = await c.connect(2, "bob");
    expect(msgs(again).map((m) => m.text)).toContain("while you were out");
    await c.close();
  });
});

describe("Router groups: system messages", () => {
  it("membership changes become system messages in the group's conversation, removed members included", async () => {
    const w = sharded(3);
    const { c } = w;
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const carol = await c.connect(2, "carol");
    const dave = await c.connect(2, "dave");
    const g = await w.dir(1).create(u("alice"), { id: groupId("sys"), members: [u("bob")] });
    await w.dir(0).addMembers(g.id, u("alice"), [u("carol")]);
    await w.dir(2).removeMembers(g.id, u("alice"), [u("bob")]);
    await w.dir(0).leave(g.id, u("carol"));
    await Promise.all(w.systemPosts);
    await c.flush();
    const sys = (d: ClusterDevice) =>
      msgs(d)
        .filter((m) => m.system)
        .map((m) => [m.system!.event, m.system!.actor, [...m.system!.members]]);
    expect(sys(alice)).toEqual([
      ["group.created", "alice", ["alice", "bob"]],
      ["member.added", "alice", ["carol"]],
      ["member.removed", "alice", ["bob"]],
      ["member.left", "carol", ["carol"]],
    ]);
    expect(sys(bob)).toEqual([
      ["group.created", "alice", ["alice", "bob"]],
      ["member.added", "alice", ["carol"]],
      ["member.removed", "alice", ["bob"]],
    ]);
    expect(sys(carol)).toEqual([
      ["member.added", "alice", ["carol"]],
      ["member.removed", "alice", ["bob"]],
      ["member.left", "carol", ["carol"]],
    ]);
    expect(sys(dave)).toEqual([]);
    // They are ordinary messages of the conversation: sequence numbers in order.
    const seqs = msgs(alice).map((m) => m.seq);
    expect(seqs).toEqual([1, 2, 3, 4]);
    expect(msgs(alice).every((m) => m.conversation === "g:sys" && m.fromDevice === "system")).toBe(
      true,
    );
    await c.close();
  });
});

describe("Router groups: hand-over when a node joins mid-traffic", () => {
  it("moves the groups the ring diff names to the new node and loses no group message", async () => {
    // One cluster-wide queue and acking clients: this test is about the groups' hand-over, not
    // about per-node queues, which free a window slot acked on another node only at their next
    // retry (the test never moves the clock).
    const w = sharded(2, { sharedQueue: true });
    const { c } = w;
    const users = Array.from({ length: 8 }, (_, i) => `u${i}`);
    const devs = new Map<string, ClusterDevice>();
    for (const [i, user] of users.entries()) {
      devs.set(user, await c.connect(i % 2, user, "d1", { autoAck: true }));
    }
    // 24 groups of 4 members each, created from both nodes.
    const groups: { id: GroupId; members: string[] }[] = [];
    for (let i = 0; i < 24; i++) {
      const members = [0, 1, 2, 3].map((k) => users[(i + k * 3) % users.length]!);
      const id = groupId(`grp${i}`);
      await w.dir(i % 2).create(u(members[0]!), { id, members: members.slice(1).map(u) });
      groups.push({ id, members });
    }
    await Promise.all(w.systemPosts);
    await c.flush();
    for (const d of devs.values()) d.transport.clear();

    let n = 0;
    const sent: { group: GroupId; text: string; from: string }[] = [];
    const burst = () => {
      const out: Promise<void>[] = [];
      // Every fourth group stays quiet: only the old owner's push (adopt) can move it.
      for (const g of groups.filter((_, i) => i % 4 !== 3)) {
        const from = g.members[n % g.members.length]!;
        const text = `${g.id}#${n++}`;
        sent.push({ group: g.id, text, from });
        const d = devs.get(from)!;
        out.push(
          d.node.gateway.receive(
            d.conn,
            JSON.stringify({ type: "send", id: `x${n}`, to: { group: g.id }, text }),
          ),
        );
      }
      return out;
    };

    // Traffic never stops: each burst is in flight while the next ring step happens.
    const inflight: Promise<unknown>[] = [...burst()];
    const before = w.ring;
    // n3 joins on the new ring while n1 and n2 still route by the old one.
    const { node: n3, next } = w.join();
    inflight.push(...burst());
    await c.flush();
    const n3dev = await c.connect(2, "late", "d1");
    // n1 switches (views differ: requests get passed on), then n2 (n3 pulls what it is asked for).
    w.dir(0).setRing(next.clone());
    inflight.push(...burst());
    await c.flush();
    w.dir(1).setRing(next.clone());
    inflight.push(...burst());
    await c.flush();
    // The old owners push the rest while more traffic flows.
    inflight.push(...burst(), w.dir(0).rebalance(), ...burst(), w.dir(1).rebalance(), ...burst());
    await Promise.all(inflight);
    await c.flush();
    inflight.length = 0;
    inflight.push(...burst());
    await Promise.all(inflight);
    await c.flush();

    // The ring diff named the groups that move; each now lives on its new owner only.
    const moved = new GroupSharder({ ring: next, nodeId: n3.id }).handover(
      before,
      next,
      groups.map((g) => g.id),
    );
    expect(moved.length).toBeGreaterThan(0);
    for (const m of moved) expect(m.to).toBe(n3.id);
    for (const g of groups) {
      const owner = next.lookup(g.id)!;
      for (const [i, part] of w.parts.entries()) {
        const held = (await part.service.store.get(g.id)) !== undefined;
        expect(held, `${g.id} on n${i + 1} (owner ${owner})`).toBe(c.nodes[i]!.id === owner);
      }
    }

    // No group message lost: every send was accepted, and every other member got each once.
    for (const d of devs.values()) expect(d.transport.ofType("error")).toEqual([]);
    const accepted = [...devs.values()].flatMap((d) =>
      d.transport.ofType("receipt").filter((r) => r.status === "sent"),
    );
    expect(accepted).toHaveLength(sent.length);
    for (const [user, d] of devs) {
      const got = msgs(d).map((m) => m.text);
      const expected = sent
        .filter(
          (s) => s.from !== user && groups.find((g) => g.id === s.group)!.members.includes(user),
        )
        .map((s) => s.text);
      expect(got.slice().sort()).toEqual(expected.slice().sort());
      expect(new Set(got).size).toBe(got.length);
    }
    expect(msgs(n3dev)).toEqual([]);
    // The hand-over really ran over the control channel, through both paths: n3 pulling a
    // group it was asked about (release) and an old owner pushing the rest (adopt).
    const ops = (op: string) =>
      c.bus.log.filter(
        (p) =>
          p.packet.kind === "control" &&
          (p.packet.data as { body?: { op?: string } }).body?.op === op,
      ).length;
    expect(ops("release")).toBeGreaterThan(0);
    expect(ops("adopt")).toBeGreaterThan(0);
    await c.close();
  });

  it("a send that reaches the new owner before the old one hands over pulls the group first", async () => {
    const w = sharded(2);
    const { c } = w;
    const before = w.ring;
    // Find a group id that will move to n3 when it joins.
    const probe = before.clone();
    probe.add(nodeId("n3"));
    let moving: GroupId | undefined;
    for (let i = 0; moving === undefined; i++) {
      if (probe.lookup(`mv${i}`) === "n3") moving = groupId(`mv${i}`);
    }
    const alice = await c.connect(0, "alice");
    const bob = await c.connect(1, "bob");
    const oldOwner = before.lookup(moving)!;
    await w.dir(0).create(u("alice"), { id: moving, members: [u("bob")] });
    await Promise.all(w.systemPosts);
    await c.flush();
    bob.transport.clear();

    const { node: n3, next } = w.join();
    w.dir(0).setRing(next.clone());
    w.dir(1).setRing(next.clone());
    // No rebalance yet: the group still sits on its old owner.
    const oldIndex = c.nodes.findIndex((n) => n.id === oldOwner);
    expect(await w.parts[oldIndex]!.service.store.get(moving)).toBeDefined();
    await alice.send({ type: "send", id: "a1", to: { group: moving }, text: "mid hand-over" });
    expect(alice.transport.ofType("error")).toEqual([]);
    expect(msgs(bob).map((m) => m.text)).toEqual(["mid hand-over"]);
    // n3 pulled it (release) and now holds it alone; the old owner's rebalance has nothing left.
    expect(await w.parts[2]!.service.store.get(moving)).toBeDefined();
    expect(await w.parts[oldIndex]!.service.store.get(moving)).toBeUndefined();
    const released = c.bus.log.filter(
      (p) =>
        p.packet.kind === "control" &&
        p.to === oldOwner &&
        (p.packet.data as { body?: { op?: string } }).body?.op === "release",
    );
    expect(released.length).toBeGreaterThan(0);
    expect(await w.dir(oldIndex).rebalance()).toEqual([]);
    expect(n3.id).toBe("n3");
    await c.close();
  });
});
