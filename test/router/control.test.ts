import { describe, expect, it } from "vitest";
import {
  ManualClock,
  MemoryNodeBus,
  type NodeId,
  RelayError,
  Router,
  sequentialIds,
} from "../../src/index.js";

const node = (s: string) => s as NodeId;

describe("Router control channel (node-to-node requests)", () => {
  it("answers a request from another node, keeps error codes, and times out on silence", async () => {
    const clock = new ManualClock();
    const bus = new MemoryNodeBus();
    const a = new Router({ nodeId: node("a"), bus, clock, ids: sequentialIds("a") });
    const b = new Router({ nodeId: node("b"), bus, clock, ids: sequentialIds("b") });
    await Promise.all([a.start(), b.start()]);
    b.handle("double", async (body, from) => ({ twice: (body as number) * 2, from }));
    b.handle("refuse", async () => {
      throw new RelayError("not_group_admin", "nope");
    });
    await expect(a.request(node("b"), "double", 21)).resolves.toEqual({ twice: 42, from: "a" });
    await expect(a.request(node("b"), "refuse", null)).rejects.toMatchObject({
      code: "not_group_admin",
    });
    const silent = a.request(node("c"), "double", 1, 1000);
    clock.advance(1000);
    await expect(silent).rejects.toMatchObject({ code: "timeout" });
    // A node may ask itself without the bus.
    a.handle("echo", async (body) => body);
    await expect(a.request(node("a"), "echo", "hi")).resolves.toBe("hi");
  });
});
