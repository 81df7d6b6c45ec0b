import { afterEach, expect, it } from "vitest";
import { type DeviceId, deviceKey, ManualClock, type UserId } from "../../../src/core/index.js";
import type { ServerFrame } from "../../../src/protocol/index.js";
import { startWsNode } from "./ws-helpers.js";

type Node = Awaited<ReturnType<typeof startWsNode>>;
let node: Node | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

const sentTo = (id: string) => (f: ServerFrame) =>
  (f.type === "receipt" && f.status === "sent" && f.clientId === id) ||
  (f.type === "error" && f.ref === id);

it("over real sockets: bob's phone, gone 30 days, is unlinked; carol hears failed for it, the laptop keeps getting messages", async () => {
  // The router's time (sweeps, last seen, TTLs) is a ManualClock; the sockets are real.
  const clock = new ManualClock(1_000_000);
  node = await startWsNode({ router: { clock } });
  const failed: [string, string][] = [];
  node.router.on("failed", (_env, device, reason) => failed.push([device, reason]));
  const phone = await node.connect("bob:phone");
  phone.socket.close();
  const laptop = await node.connect("bob:laptop");
  const carol = await node.connect("carol:phone");
  for (
    let t = 0;
    t < 200 && (await node.router.directory.lookup("bob" as UserId)).length > 1;
    t++
  ) {
    await new Promise((r) => setTimeout(r, 5));
  }
  clock.advance(86_400_000);
  carol.send({ type: "send", id: "c1", to: { user: "bob" }, text: "c1" });
  expect(await carol.waitFor(sentTo("c1"), "c1's answer")).toMatchObject({ status: "sent" });
  const got = await laptop.waitFor((f) => f.type === "message" && f.text === "c1", "c1");
  laptop.send({
    type: "receipt",
    status: "delivered",
    ids: [got.type === "message" ? got.id : ""],
  });

  const laptopKey = deviceKey("bob" as UserId, "laptop" as DeviceId);
  const phoneKey = deviceKey("bob" as UserId, "phone" as DeviceId);
  const queue = node.router.outbox as unknown as { pending(d: string): number };
  for (let t = 0; t < 200 && queue.pending(laptopKey) > 0; t++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(queue.pending(laptopKey)).toBe(0);
  expect(queue.pending(phoneKey)).toBe(1);

  // 31 days later (a sweep every hour), with the laptop connected throughout.
  for (let h = 0; h < 31 * 24; h++) {
    clock.advance(3_600_000);
    await new Promise((r) => setImmediate(r));
  }
  const receipt = await carol.waitFor(
    (f) => f.type === "receipt" && f.status === "failed",
    "the failed receipt",
  );
  expect(receipt).toMatchObject({ reason: "device_unlinked" });
  expect(failed).toEqual([[phoneKey, "device_unlinked"]]);
  expect(await node.router.devices.devices("bob" as UserId)).toEqual(["laptop"]);

  carol.send({ type: "send", id: "c2", to: { user: "bob" }, text: "c2" });
  expect(await carol.waitFor(sentTo("c2"), "c2's answer")).toMatchObject({ status: "sent" });
  await laptop.waitFor((f) => f.type === "message" && f.text === "c2", "c2");
});
