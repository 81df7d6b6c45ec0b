import { describe, expect, it } from "vitest";
import {
  type GroupId,
  groupId,
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
  GroupService,
  GroupSharder,
  type GroupStore,
  type GroupSystemEvent,
  MemoryGroupStore,
} from "../../src/groups/index.js";
import { HashRing } from "../../src/sharding/index.js";

const [alice, bob, carol] = ["alice", "bob", "carol"].map(userId) as [UserId, UserId, UserId];

interface Node {
  id: NodeId;
  store: GroupStore;
  service: GroupService;
  directory: GroupDirectory;
  events: GroupSystemEvent[];
}

/** N nodes wired to each other in-process; every request crosses a JSON round trip, like the bus. */
function cluster(names: string[], opts: { shared?: GroupStore; vnodes?: number } = {}) {
  const nodes = new Map<NodeId, Node>();
  const forwarded: { to: NodeId; request: GroupRequest }[] = [];
  let ring = new HashRing<NodeId>({ vnodes: opts.vnodes ?? 64, nodes: names.map(nodeId) });
  const wire = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
  const addNode = (name: string) => {
    const id = nodeId(name);
    const store = opts.shared ?? new MemoryGroupStore();
    const service = new GroupService({ store, ids: sequentialIds(`${name}.`) });
    const events: GroupSystemEvent[] = [];
    service.on("system", (e) => events.push(e));
    const directory = new GroupDirectory({
      sharder: new GroupSharder({ ring: ring.clone(), nodeId: id }),
      service,
      ids: sequentialIds(`${name}.`),
      sharedStore: opts.shared !== undefined,
      forward: async (owner, request) => {
        forwarded.push({ to: owner, request });
        const target = nodes.get(owner);
        if (!target) throw new Error(`node ${owner} is down`);
        return wire(await target.directory.handle(wire(request)));
      },
    });
    const node = { id, store, service, directory, events };
    nodes.set(id, node);
    return node;
  };
  for (const n of names) addNode(n);
  return {
    nodes,
    forwarded,
    get ring() {
      return ring;
    },
    /** Every node switches to a new ring (a node joining gets it at creation). */
    setRing(next: HashRing<NodeId>) {
      ring = next;
      for (const n of nodes.values()) n.directory.setRing(next.clone());
    },
    addNode,
  };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as RelayError).code;
  }
  return "resolved";
}

async function holders(c: ReturnType<typeof cluster>, g: GroupId): Promise<NodeId[]> {
  const out: NodeId[] = [];
  for (const n of c.nodes.values()) if (await n.store.get(g)) out.push(n.id);
  return out;
}

describe("GroupDirectory", () => {
  it("answers locally on the owner and forwards from other nodes", async () => {
    const c = cluster(["n1", "n2"]);
    const [n1, n2] = [c.nodes.get(nodeId("n1"))!, c.nodes.get(nodeId("n2"))!];
    const ids: GroupId[] = [];
    for (let i = 0; i < 20; i++) {
      const g = await (i % 2 ? n1 : n2).directory.create(alice, { members: [bob] });
      ids.push(g.id);
    }
    for (const g of ids) {
      const owner = c.ring.lookup(g)!;
      expect(await holders(c, g)).toEqual([owner]);
      for (const n of [n1, n2]) {
        expect(await n.directory.members(g)).toEqual([alice, bob]);
        expect(await n.directory.isMember(g, bob)).toBe(true);
        expect(await n.directory.isMember(g, carol)).toBe(false);
      }
      // The owner's service told the membership change.
      expect(c.nodes.get(owner)!.events.some((e) => e.groupId === g)).toBe(true);
    }
    // Both nodes own some groups, and only non-owned ones were forwarded.
    expect(new Set(ids.map((g) => c.ring.lookup(g))).size).toBe(2);
    const before = c.forwarded.length;
    const local = ids.find((g) => c.ring.lookup(g) === "n1")!;
    await n1.directory.members(local);
    expect(c.forwarded.length).toBe(before);
  });

  it("carries commands and error codes across nodes", async () => {
    const c = cluster(["n1", "n2"]);
    const [n1, n2] = [c.nodes.get(nodeId("n1"))!, c.nodes.get(nodeId("n2"))!];
    let remote: GroupId | undefined;
    for (let i = 0; remote === undefined; i++) {
      if (c.ring.lookup(`x${i}`) === "n2") remote = groupId(`x${i}`);
    }
    await n1.directory.create(alice, { id: remote, members: [bob] });
    expect(await n2.store.get(remote)).toBeDefined();
    expect(await n1.store.get(remote)).toBeUndefined();
    expect(await code(n1.directory.addMembers(remote, bob, [carol]))).toBe("not_group_admin");
    expect(await n1.directory.addMembers(remote, alice, [carol])).toEqual([carol]);
    await n1.directory.promote(remote, alice, bob);
    await n1.directory.demote(remote, bob, alice);
    await n1.directory.setReceipts(remote, bob, "aggregate");
    await n1.directory.leave(remote, carol);
    expect(await n1.directory.get(remote)).toMatchObject({
      members: [alice, bob],
      admins: [bob],
      receipts: "aggregate",
    });
    expect(await n1.directory.removeMembers(remote, bob, [alice])).toEqual([alice]);
    await n1.directory.assertMember(remote, bob);
    expect(await code(n1.directory.assertMember(remote, alice))).toBe("not_group_member");
    expect(await code(n1.directory.members(groupId("nope")))).toBe("group_not_found");
    expect(await code(n1.directory.create(alice, { id: remote }))).toBe("duplicate");
    expect(n2.events.map((e) => e.event.event)).toEqual([
      "group.created",
      "member.added",
      "member.left",
      "member.removed",
    ]);
    expect(n1.events).toEqual([]);
  });

  it("hand-over when a node joins mid-traffic: nothing is lost, each group ends on its owner", async () => {
    const c = cluster(["n1", "n2", "n3"]);
    const nodes = () => [...c.nodes.values()];
    const groups: GroupId[] = [];
    for (let i = 0; i < 120; i++) {
      groups.push((await nodes()[i % 3]!.directory.create(alice, { members: [bob] })).id);
    }
    const next = c.ring.clone().add(nodeId("n4"));
    // n4 starts on the new ring; the others switch one at a time while traffic flows.
    c.addNode("n4").directory.setRing(next.clone());
    const added: UserId[] = [];
    let step = 0;
    const traffic = async () => {
      for (const g of groups) {
        const n = nodes()[step++ % nodes().length]!;
        expect(await n.directory.members(g)).toEqual(expect.arrayContaining([alice, bob]));
      }
    };
    for (const name of ["n1", "n2", "n3"]) {
      c.nodes.get(nodeId(name))!.directory.setRing(next.clone());
      await traffic();
      const u = userId(`joined-after-${name}`);
      for (const g of groups.slice(0, 30))
        await nodes()[step++ % 4]!.directory.addMembers(g, alice, [u]);
      added.push(u);
    }
    await traffic();
    const moves = (await Promise.all(nodes().map((n) => n.directory.rebalance()))).flat();
    expect(moves.every((m) => m.to === "n4")).toBe(true);
    for (const g of groups) {
      expect(await holders(c, g)).toEqual([next.lookup(g)]);
      for (const n of nodes()) {
        expect(await n.directory.members(g)).toEqual(
          groups.indexOf(g) < 30 ? [alice, bob, ...added] : [alice, bob],
        );
      }
    }
    expect(groups.filter((g) => next.lookup(g) === "n4").length).toBeGreaterThan(10);
    // The rolling switch went through both transit paths: pulls and passed-on requests.
    expect(c.forwarded.some((f) => f.request.op === "release")).toBe(true);
    expect(c.forwarded.some((f) => (f.request.hops ?? 0) > 0)).toBe(true);
  });

  it("hand-over when a node leaves gracefully", async () => {
    const c = cluster(["n1", "n2", "n3"]);
    const groups: GroupId[] = [];
    for (let i = 0; i < 60; i++) {
      groups.push(
        (await c.nodes.get(nodeId("n1"))!.directory.create(alice, { members: [bob] })).id,
      );
    }
    const next = c.ring.clone();
    next.remove(nodeId("n3"));
    c.setRing(next);
    const old = new HashRing<NodeId>({ vnodes: 64, nodes: ["n1", "n2", "n3"].map(nodeId) });
    const moved = await c.nodes.get(nodeId("n3"))!.directory.rebalance();
    expect(moved.map((m) => m.groupId).sort()).toEqual(
      groups.filter((g) => old.lookup(g) === "n3").sort(),
    );
    expect(moved.length).toBeGreaterThan(0);
    c.nodes.delete(nodeId("n3"));
    for (const g of groups) {
      expect(await holders(c, g)).toEqual([next.lookup(g)]);
      expect(await c.nodes.get(nodeId("n2"))!.directory.members(g)).toEqual([alice, bob]);
    }
  });

  it("with a shared store, hand-over moves ownership only", async () => {
    const shared = new MemoryGroupStore();
    const c = cluster(["n1", "n2"], { shared });
    const n1 = c.nodes.get(nodeId("n1"))!;
    const groups: GroupId[] = [];
    for (let i = 0; i < 30; i++) groups.push((await n1.directory.create(alice)).id);
    c.addNode("n3");
    c.setRing(c.ring.clone().add(nodeId("n3")));
    const moves = (
      await Promise.all([...c.nodes.values()].map((n) => n.directory.rebalance()))
    ).flat();
    expect(moves.length).toBeGreaterThan(0);
    expect((await shared.ids()).length).toBe(30);
    for (const g of groups)
      expect(await c.nodes.get(nodeId("n3"))!.directory.members(g)).toEqual([alice]);
  });

  it("an empty ring is reported as store_unavailable; handle never rejects", async () => {
    const service = new GroupService();
    const d = new GroupDirectory({
      sharder: new GroupSharder({ ring: new HashRing<NodeId>(), nodeId: nodeId("n1") }),
      service,
      forward: async () => ({ ok: true }),
    });
    expect(await code(d.members(groupId("g")))).toBe("store_unavailable");
    expect(await d.handle({ op: "members", groupId: groupId("g") })).toMatchObject({
      ok: false,
      code: "group_not_found",
    });
  });
});
