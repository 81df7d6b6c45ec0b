import assert from "node:assert/strict";
import {
  deviceId,
  deviceKey,
  type NodeId,
  nodeId,
  type Session,
  type SessionId,
  sessionId,
  userId,
} from "../../core/index.js";
import type { SessionDirectory } from "../../router/index.js";
import type { ConformanceCase, PortFactory } from "./types.js";

function sess(id: string, user: string, node: string, at: number, device = `d-${id}`): Session {
  return {
    sessionId: sessionId(id),
    userId: userId(user),
    deviceId: deviceId(device),
    nodeId: nodeId(node),
    connectedAt: at,
  };
}

const ids = (list: readonly Session[]): SessionId[] => list.map((s) => s.sessionId);
const sortedIds = (list: readonly Session[]): string[] => ids(list).map(String).sort();
const plain = (s: Session): Session => ({
  sessionId: s.sessionId,
  userId: s.userId,
  deviceId: s.deviceId,
  nodeId: s.nodeId,
  connectedAt: s.connectedAt,
});

/**
 * The behaviour every {@link SessionDirectory} must have. Run it against your own adapter:
 * `for (const c of sessionDirectoryConformance(factory)) it(c.name, c.run)`.
 */
export function sessionDirectoryConformance(
  factory: PortFactory<SessionDirectory>,
): ConformanceCase[] {
  const with_ = (
    name: string,
    body: (dir: SessionDirectory) => Promise<void>,
  ): ConformanceCase => ({
    name: `SessionDirectory: ${name}`,
    async run() {
      const dir = await factory.create();
      try {
        await body(dir);
      } finally {
        await factory.dispose?.(dir);
      }
    },
  });

  return [
    with_("lookup of an unknown user is empty", async (dir) => {
      assert.deepEqual([...(await dir.lookup(userId("nobody")))], []);
      assert.deepEqual([...(await dir.sessionsOf(nodeId("n0")))], []);
    }),

    with_("register then lookup returns the session, field for field", async (dir) => {
      const s = sess("s1", "alice", "n1", 1000);
      await dir.register(s);
      const found = await dir.lookup(userId("alice"));
      assert.equal(found.length, 1);
      assert.deepEqual(plain(found[0]!), s);
    }),

    with_("a user's devices come back oldest (first registered) first", async (dir) => {
      await dir.register(sess("s1", "alice", "n1", 1));
      await dir.register(sess("s2", "alice", "n2", 2));
      await dir.register(sess("s3", "alice", "n1", 3));
      await dir.register(sess("x1", "bob", "n1", 4));
      assert.deepEqual(ids(await dir.lookup(userId("alice"))), ["s1", "s2", "s3"]);
      assert.deepEqual(ids(await dir.lookup(userId("bob"))), ["x1"]);
    }),

    with_("registering the same sessionId again replaces the old entry", async (dir) => {
      await dir.register(sess("s1", "alice", "n1", 1));
      await dir.register(sess("s2", "alice", "n1", 2));
      await dir.register(sess("s1", "alice", "n2", 3));
      const found = await dir.lookup(userId("alice"));
      assert.deepEqual(ids(found), ["s2", "s1"], "re-registered session moves to the end");
      assert.equal(found[1]!.nodeId, "n2");
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n1"))), ["s2"]);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n2"))), ["s1"]);
      // Moving a session to another user forgets it under the first.
      await dir.register(sess("s2", "bob", "n1", 4));
      assert.deepEqual(ids(await dir.lookup(userId("alice"))), ["s1"]);
      assert.deepEqual(ids(await dir.lookup(userId("bob"))), ["s2"]);
    }),

    with_("unregister returns the session once, then undefined", async (dir) => {
      const s = sess("s1", "alice", "n1", 1);
      await dir.register(s);
      await dir.register(sess("s2", "alice", "n1", 2));
      const gone = await dir.unregister(sessionId("s1"));
      assert.ok(gone);
      assert.deepEqual(plain(gone), s);
      assert.equal(await dir.unregister(sessionId("s1")), undefined);
      assert.equal(await dir.unregister(sessionId("never")), undefined);
      assert.deepEqual(ids(await dir.lookup(userId("alice"))), ["s2"]);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n1"))), ["s2"]);
    }),

    with_("lookupMany answers every requested user, empty for unknown ones", async (dir) => {
      await dir.register(sess("a1", "alice", "n1", 1));
      await dir.register(sess("a2", "alice", "n2", 2));
      await dir.register(sess("b1", "bob", "n2", 3));
      const m = await dir.lookupMany([
        userId("alice"),
        userId("bob"),
        userId("carol"),
        userId("alice"),
      ]);
      assert.deepEqual(ids(m.get(userId("alice")) ?? []), ["a1", "a2"]);
      assert.deepEqual(ids(m.get(userId("bob")) ?? []), ["b1"]);
      assert.ok(m.has(userId("carol")), "unknown users get an entry");
      assert.deepEqual([...(m.get(userId("carol")) ?? ["missing"])], []);
      assert.equal(m.size, 3);
      assert.equal((await dir.lookupMany([])).size, 0);
    }),

    with_("sessionsOf lists exactly one node's sessions", async (dir) => {
      await dir.register(sess("a1", "alice", "n1", 1));
      await dir.register(sess("b1", "bob", "n1", 2));
      await dir.register(sess("b2", "bob", "n2", 3));
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n1"))), ["a1", "b1"]);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n2"))), ["b2"]);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n3"))), []);
    }),

    with_("dropNode drops exactly that node's sessions and returns them", async (dir) => {
      await dir.register(sess("a1", "alice", "n1", 1));
      await dir.register(sess("a2", "alice", "n2", 2));
      await dir.register(sess("b1", "bob", "n1", 3));
      await dir.register(sess("c1", "carol", "n2", 4));
      const dropped = await dir.dropNode(nodeId("n1"));
      assert.deepEqual(sortedIds(dropped), ["a1", "b1"]);
      assert.deepEqual(
        dropped.map(plain).sort((x, y) => x.connectedAt - y.connectedAt),
        [sess("a1", "alice", "n1", 1), sess("b1", "bob", "n1", 3)],
      );
      assert.deepEqual(ids(await dir.lookup(userId("alice"))), ["a2"], "the other device stays");
      assert.deepEqual(ids(await dir.lookup(userId("bob"))), []);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n1"))), []);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("n2"))), ["a2", "c1"]);
      assert.deepEqual([...(await dir.dropNode(nodeId("n1")))], [], "dropping again drops nothing");
      assert.deepEqual([...(await dir.dropNode(nodeId("unknown")))], []);
    }),

    with_(
      "lookupDeviceSync, where offered, agrees with lookup through registers, replaces and unregisters",
      async (dir) => {
        if (!dir.lookupDeviceSync) return;
        const perDevice = (user: string, device: string) =>
          ids(dir.lookupDeviceSync!(deviceKey(userId(user), deviceId(device))));
        const perUser = async (user: string, device: string) =>
          ids((await dir.lookup(userId(user))).filter((s) => s.deviceId === device));
        await dir.register(sess("s1", "alice", "n1", 1, "phone"));
        await dir.register(sess("s2", "alice", "n2", 2, "phone"));
        await dir.register(sess("s3", "alice", "n1", 3, "laptop"));
        assert.deepEqual(perDevice("alice", "phone"), ["s1", "s2"]);
        assert.deepEqual(perDevice("alice", "phone"), await perUser("alice", "phone"));
        assert.deepEqual(perDevice("alice", "laptop"), ["s3"]);
        // The same session id registered again for another device moves it.
        await dir.register(sess("s1", "alice", "n1", 4, "laptop"));
        assert.deepEqual(perDevice("alice", "phone"), ["s2"]);
        assert.deepEqual(perDevice("alice", "laptop"), await perUser("alice", "laptop"));
        await dir.unregister(sessionId("s2"));
        await dir.dropNode(nodeId("n1"));
        assert.deepEqual(perDevice("alice", "phone"), []);
        assert.deepEqual(perDevice("alice", "laptop"), []);
        assert.deepEqual(perDevice("nobody", "x"), []);
      },
    ),

    with_("ids with colons, braces, spaces and unicode round-trip", async (dir) => {
      const odd = sess("s:{1} é", "user:{x}*?[a]", "node {a}:b", 5, "dev 📱");
      await dir.register(odd);
      await dir.register(sess("plain", "user:{x}", "node {a}", 6));
      assert.deepEqual((await dir.lookup(userId("user:{x}*?[a]"))).map(plain), [odd]);
      assert.deepEqual(ids(await dir.lookup(userId("user:{x}"))), ["plain"]);
      assert.deepEqual(sortedIds(await dir.sessionsOf(nodeId("node {a}:b"))), ["s:{1} é"]);
      assert.deepEqual(sortedIds(await dir.dropNode(nodeId("node {a}:b"))), ["s:{1} é"]);
      assert.deepEqual(ids(await dir.lookup(userId("user:{x}"))), ["plain"]);
    }),

    with_("concurrent registers are all kept", async (dir) => {
      const all = Array.from({ length: 60 }, (_, i) => sess(`s${i}`, `u${i % 7}`, `n${i % 3}`, i));
      await Promise.all(all.map((s) => dir.register(s)));
      let total = 0;
      for (let n = 0; n < 3; n++) total += (await dir.sessionsOf(nodeId(`n${n}`))).length;
      assert.equal(total, 60);
      const m = await dir.lookupMany(Array.from({ length: 7 }, (_, u) => userId(`u${u}`)));
      assert.equal(
        [...m.values()].reduce((a, l) => a + l.length, 0),
        60,
      );
    }),

    with_(
      "racing registers, moves, unregisters and dropNode leave the indexes consistent",
      async (dir) => {
        const node = (i: number): NodeId => nodeId(`n${i % 3}`);
        await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            dir.register(sess(`s${i}`, `u${i % 5}`, node(i), i)),
          ),
        );
        await Promise.all([
          dir.dropNode(nodeId("n0")),
          ...Array.from({ length: 10 }, (_, i) =>
            dir.register(sess(`s${i}`, `u${i % 5}`, node(i + 1), 100 + i)),
          ),
          ...Array.from({ length: 5 }, (_, i) => dir.unregister(sessionId(`s${20 + i}`))),
        ]);
        // Whatever the interleaving, the user view and the node view agree.
        const byUser = await dir.lookupMany(Array.from({ length: 5 }, (_, u) => userId(`u${u}`)));
        const fromUsers = [...byUser.values()]
          .flat()
          .map((s) => `${s.sessionId}@${s.nodeId}`)
          .sort();
        const fromNodes: string[] = [];
        for (let n = 0; n < 3; n++) {
          for (const s of await dir.sessionsOf(nodeId(`n${n}`)))
            fromNodes.push(`${s.sessionId}@${s.nodeId}`);
        }
        assert.deepEqual(fromNodes.sort(), fromUsers);
        assert.equal(
          new Set(fromUsers.map((x) => x.split("@")[0])).size,
          fromUsers.length,
          "no duplicates",
        );
        for (let i = 20; i < 25; i++) assert.ok(!fromUsers.some((x) => x.startsWith(`s${i}@`)));
      },
    ),
  ];
}
