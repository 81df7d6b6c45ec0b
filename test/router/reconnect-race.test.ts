import { describe, expect, it } from "vitest";
import {
  type DeliveryQueue,
  type DeviceId,
  deviceKey,
  MemorySessionDirectory,
  type NodeId,
  Router,
  type Session,
  type SessionDirectory,
  type SessionId,
  sequentialIds,
  type UserId,
} from "../../src/index.js";

/** A directory whose lookups answer late, as a remote store's can. */
class LaggingDirectory implements SessionDirectory {
  readonly #inner = new MemorySessionDirectory();
  register(session: Session) {
    return this.#inner.register(session);
  }
  unregister(sessionId: SessionId) {
    return this.#inner.unregister(sessionId);
  }
  async lookup(userId: UserId): Promise<readonly Session[]> {
    const answer = [...this.#inner.lookupSync(userId)];
    for (let i = 0; i < 20; i++) await Promise.resolve();
    return answer;
  }
  lookupMany(userIds: readonly UserId[]) {
    return this.#inner.lookupMany(userIds);
  }
  sessionsOf(nodeId: NodeId) {
    return this.#inner.sessionsOf(nodeId);
  }
  dropNode(nodeId: NodeId) {
    return this.#inner.dropNode(nodeId);
  }
}

const session = (id: string): Session => ({
  sessionId: id as SessionId,
  userId: "bob" as UserId,
  deviceId: "phone" as DeviceId,
  nodeId: "node-1" as NodeId,
  connectedAt: 0,
});

describe("Router: a reconnect racing the old socket's close", () => {
  it("leaves the device online in the queue whatever the directory's latency", async () => {
    const router = new Router({ directory: new LaggingDirectory(), ids: sequentialIds("m") });
    await router.connect(session("old"));
    // The old socket's close and the new connection arrive together.
    await Promise.all([router.disconnect("old" as SessionId), router.connect(session("new"))]);
    const queue = router.outbox as DeliveryQueue;
    expect(queue.isOnline(deviceKey("bob" as UserId, "phone" as DeviceId))).toBe(true);
    expect((await router.directory.lookup("bob" as UserId)).map((s) => s.sessionId)).toEqual([
      "new",
    ]);
    await router.close();
  });
});
