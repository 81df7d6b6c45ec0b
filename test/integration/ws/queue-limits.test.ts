import { afterEach, expect, it } from "vitest";
import { type DeviceId, deviceKey, type UserId } from "../../../src/core/index.js";
import type { ServerFrame } from "../../../src/protocol/index.js";
import { startWsNode } from "./ws-helpers.js";

type Node = Awaited<ReturnType<typeof startWsNode>>;
let node: Node | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

const answerTo = (id: string) => (f: ServerFrame) =>
  (f.type === "receipt" && f.status === "sent" && f.clientId === id) ||
  (f.type === "error" && f.ref === id);

it("a flood into an offline victim's queue is refused to the flooder (quota_exceeded); a friend's message is still accepted", async () => {
  // The rate limits out of the way: this is about what the queue holds per sender.
  node = await startWsNode({
    queue: { maxPerDevice: 300, perSender: { count: 100 } },
    limits: { rateLimits: false },
  });
  await node.router.linkDevice("bob" as UserId, "phone" as DeviceId);
  const mallory = await node.connect("mallory:laptop");
  for (let n = 0; n < 300; n++) {
    mallory.send({ type: "send", id: `x${n}`, to: { user: "bob" }, text: `spam ${n}` });
  }
  await mallory.waitFor(answerTo("x299"), "the flood's last answer", 10_000);
  const sent = mallory.ofType("receipt").filter((r) => r.status === "sent");
  const refused = mallory.ofType("error");
  expect(sent).toHaveLength(100);
  expect(new Set(refused.map((e) => e.code))).toEqual(new Set(["quota_exceeded"]));
  expect(refused).toHaveLength(200);

  const alice = await node.connect("alice:phone");
  alice.send({ type: "send", id: "a1", to: { user: "bob" }, text: "are you there?" });
  const answer = await alice.waitFor(answerTo("a1"), "alice's answer");
  expect(answer).toMatchObject({ type: "receipt", status: "sent" });

  // The victim gets the friend's message after the flooder's, acking as it reads.
  const bob = await node.connect("bob:phone");
  const acked = new Set<string>();
  const texts = () => bob.ofType("message").map((m) => m.text);
  for (let round = 0; round < 20 && !texts().includes("are you there?"); round++) {
    await bob.waitForCount((f) => f.type === "message", acked.size + 1, "messages");
    const ids = bob
      .ofType("message")
      .map((m) => m.id)
      .filter((id) => !acked.has(id));
    for (const id of ids) acked.add(id);
    bob.send({ type: "receipt", status: "delivered", ids });
  }
  expect(texts()).toContain("are you there?");
  expect(texts()).toHaveLength(101);
});

it("a device that stopped connecting with a full queue does not make its user unreachable: the others get the message, the sender sees that device failed", async () => {
  node = await startWsNode({ queue: { maxPerDevice: 50, perSender: false } });
  // bob's old phone was linked, then never came back; its queue filled up.
  await node.router.linkDevice("bob" as UserId, "oldphone" as DeviceId);
  const carol = await node.connect("carol:phone");
  for (let n = 0; n < 50; n++) {
    carol.send({ type: "send", id: `c${n}`, to: { user: "bob" }, text: `c${n}` });
  }
  await carol.waitFor(answerTo("c49"), "carol's last answer", 10_000);
  expect(carol.ofType("receipt").filter((r) => r.status === "sent")).toHaveLength(50);

  const failed: [string, string][] = [];
  node.router.on("failed", (_env, device, reason) => failed.push([device, reason]));
  const laptop = await node.connect("bob:laptop");
  const alice = await node.connect("alice:phone");
  alice.send({ type: "send", id: "a1", to: { user: "bob" }, text: "still there?" });
  const answer = await alice.waitFor(answerTo("a1"), "alice's answer");
  expect(answer).toMatchObject({ type: "receipt", status: "sent" });
  await laptop.waitFor((f) => f.type === "message" && f.text === "still there?", "the message");
  // Per device: the old phone failed (the user-level tick is the other helpers' rule).
  expect(failed).toEqual([
    [deviceKey("bob" as UserId, "oldphone" as DeviceId), "recipient_queue_full"],
  ]);
});
