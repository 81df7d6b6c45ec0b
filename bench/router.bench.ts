/**
 * router.route_1to1: parse a `send` frame, route it through the in-memory directory to an
 * in-process gateway sink (the recipient's connection), and emit the `sent` receipt to the
 * sender, with the default DeliveryQueue and ReceiptTracker in the path. The recipient's
 * delivered acks are applied once per batch of 1,000 (what its client's batched acks do), so
 * the queue stays bounded.
 */
import { Gateway } from "../src/gateway/index.js";
import {
  type DeviceId,
  type DeviceKey,
  deviceKey,
  type MessageId,
  Router,
  sequentialIds,
  type UserId,
} from "../src/index.js";
import type { BenchContext } from "./harness.js";

export default async function run(ctx: BenchContext): Promise<void> {
  if (!ctx.wants("router.route_1to1")) return;
  const router = new Router({ ids: sequentialIds() });
  const gateway = new Gateway<string>({
    router,
    ids: sequentialIds("s"),
    authenticate: (user) => ({ userId: user, deviceId: "d1" }),
  });
  let receipts = 0;
  let delivered = 0;
  const alice = await gateway.open(
    {
      send: () => {
        receipts++;
      },
      close() {},
      bufferedAmount: 0,
    },
    "alice",
  );
  await gateway.open(
    {
      send: () => {
        delivered++;
      },
      close() {},
      bufferedAmount: 0,
    },
    "bob",
  );
  if (!alice) throw new Error("alice was not admitted");
  const bob: DeviceKey = deviceKey("bob" as UserId, "d1" as DeviceId);
  const accepted: MessageId[] = [];
  router.on("accepted", (e) => accepted.push(e.id));
  const BATCH = 1000;
  let n = 0;
  const frames = () =>
    Array.from({ length: BATCH }, () =>
      JSON.stringify({
        type: "send",
        id: `c${n++}`,
        to: { user: "bob" },
        text: "hello there, how are you?",
      }),
    );
  let next = frames();
  const ops = await ctx.rate(
    "router.route_1to1",
    async () => {
      let last: Promise<void> = Promise.resolve();
      for (const f of next) last = gateway.receive(alice, f);
      await last;
      await router.outbox.ack(bob, accepted.splice(0));
      next = frames();
    },
    { batch: BATCH, time: 3000 },
  );
  if (receipts === 0 || delivered === 0) throw new Error("nothing was routed");
  ctx.report({ bench: "router.route_1to1", ops_per_s: ops });
  await router.close();
}
