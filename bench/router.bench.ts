/**
 * router.route_1to1: parse a `send` frame, route it through the in-memory directory to an
 * in-process gateway sink (the recipient's connection), and emit the `sent` receipt to the
 * sender. The recipient's delivered acks are applied in bulk per batch so the outbox stays
 * bounded, as a connected client's acks would keep it.
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
  const delivered: string[] = [];
  const alice = await gateway.open(
    { send: () => void receipts++, close() {}, bufferedAmount: 0 },
    "alice",
  );
  await gateway.open(
    {
      send: (data) => {
        delivered.push(data.slice(20, 40));
      },
      close() {},
      bufferedAmount: 0,
    },
    "bob",
  );
  const bob: DeviceKey = deviceKey("bob" as UserId, "d1" as DeviceId);
  const frames = Array.from({ length: 1000 }, (_, i) =>
    JSON.stringify({
      type: "send",
      id: `c${i}`,
      to: { user: "bob" },
      text: "hello there, how are you?",
    }),
  );
  let round = 0;
  const batch = async () => {
    round++;
    let last: Promise<void> = Promise.resolve();
    for (const f of frames) last = gateway.receive(alice!, f.replace('"c', `"r${round}c`));
    await last;
    await Promise.resolve();
    delivered.length = 0;
    await router.outbox.ack(bob, []);
  };
  // Acks: clear bob's entries in bulk (what his client's delivered receipts would do).
  const outbox = router.outbox as unknown as {
    pendingFor(d: DeviceKey): readonly { id: MessageId }[];
  };
  const ops = await ctx.rate(
    "router.route_1to1",
    async () => {
      await batch();
      await router.outbox.ack(
        bob,
        outbox.pendingFor(bob).map((e) => e.id),
      );
    },
    { batch: frames.length, time: 2000 },
  );
  ctx.report({ bench: "router.route_1to1", ops_per_s: ops, receipts_seen: receipts > 0 ? 1 : 0 });
}
